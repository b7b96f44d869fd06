pub fn verify(password: &[u8], hash: &str) -> Result<bool, argon2::password_hash::Error> {
    use argon2::PasswordVerifier;
    let parsed = argon2::PasswordHash::new(hash)?;
    Ok(argon2::Argon2::default()
        .verify_password(password, &parsed)
        .is_ok())
}
