//! The MT5 Web API handshake's hashes (`/api/auth/start`, `/api/auth/answer`).
//!
//! The password hash is `MD5(MD5(UTF-16LE(password)) ‖ "WebAPI")` over raw bytes (never hex
//! text). The client answers the server's random with `MD5(password_hash ‖ srv_rand)`, and the
//! server proves it knows the password too by answering the client's random the same way: a
//! connector that skipped checking `cli_rand_answer` would hand its data to any impostor.

use md5::{Digest, Md5};

/// `MD5(MD5(UTF-16LE(password)) ‖ "WebAPI")`.
pub fn password_hash(password: &str) -> [u8; 16] {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let inner = Md5::digest(&utf16);
    let mut outer = Md5::new();
    outer.update(inner);
    outer.update(b"WebAPI");
    outer.finalize().into()
}

/// `hex(MD5(password_hash ‖ random))`: the answer to a random sequence, either side's.
pub fn answer(password_hash: &[u8; 16], random: &[u8]) -> String {
    let mut h = Md5::new();
    h.update(password_hash);
    h.update(random);
    hex::encode(h.finalize())
}

/// A short digest of a text for keys (a cache key, not a secret): hex MD5.
pub fn digest_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// The server's random as bytes: 16 bytes given as 32 hex digits.
pub fn parse_random(hex_text: &str) -> Option<Vec<u8>> {
    hex::decode(hex_text.trim()).ok().filter(|b| b.len() == 16)
}

/// Whether the server's answer to our random is the one a server knowing the password gives.
/// Compared without regard to hex case, in constant time over the expected length.
pub fn server_answer_ok(password_hash: &[u8; 16], cli_rand: &[u8], given: &str) -> bool {
    let expected = answer(password_hash, cli_rand);
    let given = given.trim().to_ascii_lowercase();
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of the MT5 Web API documentation (Authentication): password
    // "Password1", srv_rand 73007dc7…, cli_rand 4db98fec….
    #[test]
    fn documented_example() {
        let utf16: Vec<u8> = "Password1"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            Md5::digest(&utf16).as_slice(),
            [
                236, 46, 146, 255, 112, 191, 70, 145, 174, 12, 104, 224, 47, 220, 108, 34
            ]
        );
        let ph = password_hash("Password1");
        assert_eq!(hex::encode(ph), "904ba8ecb16273d2f0ae9c3b8a023752");
        let srv = parse_random("73007dc7184747ce0f7c98516ef1c851").unwrap();
        assert_eq!(answer(&ph, &srv), "77fe51827f7fa69dd80fbec9aa33f1bb");
        let cli = parse_random("4db98fec17aab4dc5a240bdc659e8395").unwrap();
        assert_eq!(answer(&ph, &cli), "1732021b1b332f51660b2b315eed3a35");
        assert!(server_answer_ok(
            &ph,
            &cli,
            "1732021B1B332F51660B2B315EED3A35"
        ));
    }

    #[test]
    fn a_wrong_server_answer_is_refused() {
        let ph = password_hash("Password1");
        let cli = parse_random("4db98fec17aab4dc5a240bdc659e8395").unwrap();
        assert!(!server_answer_ok(
            &ph,
            &cli,
            "1732021b1b332f51660b2b315eed3a36"
        ));
        assert!(!server_answer_ok(&ph, &cli, ""));
        assert!(!server_answer_ok(
            &password_hash("other"),
            &cli,
            "1732021b1b332f51660b2b315eed3a35"
        ));
    }

    #[test]
    fn non_ascii_passwords_hash_as_utf16() {
        // "é" is one UTF-16 unit (0x00e9), "😀" two; both must differ from their UTF-8 hash.
        for p in ["pässwörd", "😀secret"] {
            let utf8 = {
                let mut h = Md5::new();
                h.update(Md5::digest(p.as_bytes()));
                h.update(b"WebAPI");
                let out: [u8; 16] = h.finalize().into();
                out
            };
            assert_ne!(password_hash(p), utf8);
        }
    }

    #[test]
    fn randoms_must_be_16_bytes_of_hex() {
        assert!(parse_random("00").is_none());
        assert!(parse_random("zz007dc7184747ce0f7c98516ef1c851").is_none());
        assert_eq!(
            parse_random("73007DC7184747CE0F7C98516EF1C851").map(|b| b.len()),
            Some(16)
        );
    }
}
