//! [`named_enum!`]: an enum of unit variants, each with its stable name, and the
//! `COUNT`, `ALL`, `name()`, `from_name()` and `Display` that follow from the one
//! table (so no list is kept in step with another by hand).

/// Declare an enum whose variants each carry a stable name (metrics labels,
/// logs, API strings):
///
/// ```
/// levee_dataplane::named_enum! {
///     /// Which way.
///     #[derive(Clone, Copy, Debug, PartialEq, Eq)]
///     pub enum Way {
///         Up => "up",
///         /// Doc comments and attributes pass through.
///         Down => "down",
///     }
/// }
/// assert_eq!(Way::COUNT, 2);
/// assert_eq!(Way::ALL, [Way::Up, Way::Down]);
/// assert_eq!(Way::Down.name(), "down");
/// assert_eq!(Way::from_name("up"), Some(Way::Up));
/// assert_eq!(Way::Up.to_string(), "up");
/// ```
///
/// Variants are numbered from 0 in the order written, so with a `#[repr]`
/// they index arrays of counters.
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// How many variants there are.
            pub const COUNT: usize = [$($text),+].len();
            /// Every variant, in order.
            pub const ALL: [$name; $name::COUNT] = [$($name::$variant),+];

            /// The variant's stable name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            /// The variant of a stable name.
            pub fn from_name(name: &str) -> Option<$name> {
                match name {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
