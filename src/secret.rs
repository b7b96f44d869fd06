#[derive(Debug, thiserror::Error)]
#[error("secret error")]
pub struct SecretError;
pub enum SecretSource {
    Env(String),
}
impl std::str::FromStr for SecretSource {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, SecretError> {
        s.strip_prefix("env:")
            .map(|v| SecretSource::Env(v.into()))
            .ok_or(SecretError)
    }
}
pub struct Secret(Vec<u8>);
impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}
impl SecretSource {
    pub fn load(&self, _account: &str) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Env(v) => std::env::var(v)
                .map(|s| Secret(s.into_bytes()))
                .map_err(|_| SecretError),
        }
    }
}
