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

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for ProbeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `Copy` set of [`ProbeRole`]s: the probes a component registers.
///
/// ```
/// use rustkernel_core::resilience::{ProbeRole, ProbeRoles};
/// let roles: ProbeRoles = [ProbeRole::Startup, ProbeRole::Liveness].into();
/// assert!(roles.contains(ProbeRole::Startup));
/// assert!(!roles.contains(ProbeRole::Readiness));
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ProbeRoles {
    bits: u8,
}

impl ProbeRoles {
    /// No role.
    pub const EMPTY: Self = Self { bits: 0 };
    /// Startup, liveness and readiness.
    pub const ALL: Self = Self::of(&ProbeRole::ALL);

    /// The set of the given roles (usable in `const`).
    #[must_use]
    pub const fn of(roles: &[ProbeRole]) -> Self {
        let mut bits = 0;
        let mut rest = roles;
        while let [role, tail @ ..] = rest {
            bits |= role.bit();
            rest = tail;
        }
        Self { bits }
    }

    /// Whether `role` is in the set.
    #[must_use]
    pub const fn contains(self, role: ProbeRole) -> bool {
        self.bits & role.bit() != 0
    }

    /// The set with `role` added.
    #[must_use]
    pub const fn with(self, role: ProbeRole) -> Self {
        Self {
            bits: self.bits | role.bit(),
        }
    }

    /// Whether the set has no role.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// The roles in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = ProbeRole> {
        ProbeRole::ALL
            .into_iter()
            .filter(move |role| self.contains(*role))
    }
}

impl<const N: usize> From<[ProbeRole; N]> for ProbeRoles {
    fn from(roles: [ProbeRole; N]) -> Self {
        Self::of(&roles)
    }
}

impl From<ProbeRole> for ProbeRoles {
    fn from(role: ProbeRole) -> Self {
        Self::EMPTY.with(role)
    }
}

impl FromIterator<ProbeRole> for ProbeRoles {
    fn from_iter<I: IntoIterator<Item = ProbeRole>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

impl fmt::Debug for ProbeRoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for ProbeRoles {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "ProbeRoles {{ startup: {=bool}, liveness: {=bool}, readiness: {=bool} }}",
            self.contains(ProbeRole::Startup),
            self.contains(ProbeRole::Liveness),
            self.contains(ProbeRole::Readiness),
        );
    }
}

/// Serialized as a sequence of roles, so human formats read `["startup", "liveness"]`.
#[cfg(feature = "serde")]
mod roles_serde {
    use super::{ProbeRole, ProbeRoles};
    use core::fmt;
    use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
    use serde::ser::{Serialize, SerializeSeq, Serializer};

    impl Serialize for ProbeRoles {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let count = self.iter().count();
            let mut seq = serializer.serialize_seq(Some(count))?;
            for role in self.iter() {
                seq.serialize_element(&role)?;
            }
            seq.end()
        }
    }

    struct RolesVisitor;

    impl<'de> Visitor<'de> for RolesVisitor {
        type Value = ProbeRoles;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence of probe roles")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ProbeRoles, A::Error> {
            let mut roles = ProbeRoles::EMPTY;
            while let Some(role) = seq.next_element::<ProbeRole>()? {
                roles = roles.with(role);
            }
            Ok(roles)
        }
    }

    impl<'de> Deserialize<'de> for ProbeRoles {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_seq(RolesVisitor)
        }
    }
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
