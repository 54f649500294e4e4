//! The three probe roles of Kubernetes and a `Copy` set of them.

use core::fmt;

/// What a probe decides, as in Kubernetes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ProbeRole {
    /// Has the component finished initializing? Until it has, the other probes do not run;
    /// if it does not within `failure_threshold x interval`, the component failed to start.
    Startup = 0,
    /// Is the component alive? If not, recovery restarts it.
    Liveness = 1,
    /// Can the component take traffic? If not, traffic goes elsewhere; nothing restarts.
    Readiness = 2,
}

impl ProbeRole {
    /// Every role, in declaration order.
    pub const ALL: [ProbeRole; 3] = [
        ProbeRole::Startup,
        ProbeRole::Liveness,
        ProbeRole::Readiness,
    ];

    /// The role's name (`"startup"`, `"liveness"`, `"readiness"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ProbeRole::Startup => "startup",
            ProbeRole::Liveness => "liveness",
            ProbeRole::Readiness => "readiness",
        }
    }
}

impl fmt::Display for ProbeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::bitset::enum_set! {
    /// A `Copy` set of [`ProbeRole`]s: the probes a component registers.
    ///
    /// ```
    /// use rustkernel_core::resilience::{ProbeRole, ProbeRoles};
    /// let roles: ProbeRoles = [ProbeRole::Startup, ProbeRole::Liveness].into();
    /// assert!(roles.contains(ProbeRole::Startup));
    /// assert!(!roles.contains(ProbeRole::Readiness));
    /// ```
    pub struct ProbeRoles of ProbeRole, expecting "a sequence of probe roles";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_build_and_iterate_in_order() {
        let roles: ProbeRoles = [ProbeRole::Readiness, ProbeRole::Startup].into();
        let mut iter = roles.iter();
        assert_eq!(iter.next(), Some(ProbeRole::Startup));
        assert_eq!(iter.next(), Some(ProbeRole::Readiness));
        assert_eq!(iter.next(), None);
        assert_eq!(ProbeRoles::ALL.iter().count(), 3);
        assert!(ProbeRoles::EMPTY.is_empty());
        assert_eq!(
            ProbeRoles::from(ProbeRole::Liveness),
            ProbeRoles::of(&[ProbeRole::Liveness])
        );
        let again: ProbeRoles = roles.iter().collect();
        assert_eq!(again, roles);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn roles_round_trip() {
        let roles = ProbeRoles::of(&[ProbeRole::Startup, ProbeRole::Readiness]);
        let mut buf = [0u8; 16];
        let bytes = postcard::to_slice(&roles, &mut buf).expect("fits");
        assert_eq!(
            postcard::from_bytes::<ProbeRoles>(bytes).expect("decodes"),
            roles
        );
        assert_eq!(
            serde_json::to_string(&roles).expect("json"),
            "[\"startup\",\"readiness\"]"
        );
    }
}
