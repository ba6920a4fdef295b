//! Personal data in a wrapper whose `Debug` prints `***`, so no log line or span field
//! can leak it by accident. The value is reachable only through [`Personal::expose`],
//! which says, where it is called, that personal data is being handled.

/// Personal data: a name, an e-mail address, a phone number, a note.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Personal<T>(T);

impl<T> Personal<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value, for storage and for authorised responses.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

/// Serialised as the plain value: only ever into responses for callers allowed to see it.
impl<T: serde::Serialize> serde::Serialize for Personal<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Personal<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let p = Personal::new("Camille Martin".to_string());
        assert_eq!(format!("{p:?}"), "***");
        assert_eq!(format!("{:?}", Some(&p)), "Some(***)");
        assert_eq!(p.expose(), "Camille Martin");
    }
}
