//! `Copy` bit sets of small fieldless enums (error kinds, probe roles), written once.
//!
//! `enum_set!` makes a set type for an enum that is `#[repr(u8)]` with at most 8 variants and
//! has `ALL: [Self; N]` and `as_str()`. The set serializes as a sequence of its members, so human
//! formats read `["transient", "timeout"]`.

/// Defines `$set`, a `Copy` bit set of `$elem`, with `const fn of(&[$elem])` for `const`
/// construction and `From<[$elem; N]>` to stand where the chapter writes `vec![..]`.
macro_rules! enum_set {
    ($(#[$meta:meta])* $vis:vis struct $set:ident of $elem:ident, expecting $expecting:literal;) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
        $vis struct $set {
            bits: u8,
        }

        impl $set {
            /// The empty set.
            pub const EMPTY: Self = Self { bits: 0 };
            /// Every member.
            pub const ALL: Self = Self::of(&$elem::ALL);

            /// The set of the given members (usable in `const`).
            #[must_use]
            pub const fn of(members: &[$elem]) -> Self {
                let mut bits = 0;
                let mut rest = members;
                while let [member, tail @ ..] = rest {
                    bits |= 1 << (*member as u8);
                    rest = tail;
                }
                Self { bits }
            }

            /// Whether `member` is in the set.
            #[must_use]
            pub const fn contains(self, member: $elem) -> bool {
                self.bits & (1 << (member as u8)) != 0
            }

            /// The set with `member` added.
            #[must_use]
            pub const fn with(self, member: $elem) -> Self {
                Self { bits: self.bits | (1 << (member as u8)) }
            }

            /// The set with `member` removed.
            #[must_use]
            pub const fn without(self, member: $elem) -> Self {
                Self { bits: self.bits & !(1 << (member as u8)) }
            }

            /// Whether the set is empty.
            #[must_use]
            pub const fn is_empty(self) -> bool {
                self.bits == 0
            }

            /// How many members the set has.
            #[must_use]
            pub const fn len(self) -> usize {
                self.bits.count_ones() as usize
            }

            /// The members, in declaration order.
            pub fn iter(self) -> impl Iterator<Item = $elem> {
                $elem::ALL.into_iter().filter(move |member| self.contains(*member))
            }
        }

        impl<const N: usize> From<[$elem; N]> for $set {
            fn from(members: [$elem; N]) -> Self {
                Self::of(&members)
            }
        }

        impl From<$elem> for $set {
            fn from(member: $elem) -> Self {
                Self::EMPTY.with(member)
            }
        }

        impl FromIterator<$elem> for $set {
            fn from_iter<I: IntoIterator<Item = $elem>>(iter: I) -> Self {
                iter.into_iter().fold(Self::EMPTY, Self::with)
            }
        }

        impl core::fmt::Debug for $set {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_set().entries(self.iter()).finish()
            }
        }

        /// `[a, b]` with each member's name.
        impl core::fmt::Display for $set {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("[")?;
                for (i, member) in self.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(member.as_str())?;
                }
                f.write_str("]")
            }
        }

        #[cfg(feature = "defmt")]
        impl defmt::Format for $set {
            fn format(&self, f: defmt::Formatter<'_>) {
                defmt::write!(f, "{}({=u8:#b})", stringify!($set), self.bits);
            }
        }

        #[cfg(feature = "serde")]
        impl serde::Serialize for $set {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = serializer.serialize_seq(Some(self.len()))?;
                for member in self.iter() {
                    seq.serialize_element(&member)?;
                }
                seq.end()
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $set {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct SetVisitor;
                impl<'de> serde::de::Visitor<'de> for SetVisitor {
                    type Value = $set;
                    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<$set, A::Error> {
                        let mut set = $set::EMPTY;
                        while let Some(member) = seq.next_element::<$elem>()? {
                            set = set.with(member);
                        }
                        Ok(set)
                    }
                }
                deserializer.deserialize_seq(SetVisitor)
            }
        }
    };
}

pub(crate) use enum_set;
