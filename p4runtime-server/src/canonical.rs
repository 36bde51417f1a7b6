//! Canonical byte strings (P4Runtime §8.4).
//!
//! Integer values travel as big-endian byte strings. The server accepts any
//! string whose value fits the field (zero padding allowed), refuses an empty
//! string (`INVALID_ARGUMENT`) and a value wider than the field
//! (`OUT_OF_RANGE`), and replies in canonical form: the shortest string that
//! holds the value, with zero as one zero byte.

use std::fmt::Display;

use crate::error::P4rtError;

/// Decodes `bytes` as an unsigned value of `width` bits (at most 128);
/// `what` names the field in errors.
pub fn decode(bytes: &[u8], width: u32, what: &(impl Display + ?Sized)) -> Result<u128, P4rtError> {
    if bytes.is_empty() {
        return Err(P4rtError::InvalidArgument(format!(
            "{what}: empty byte string (zero is one zero byte)"
        )));
    }
    let significant: &[u8] = {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        &bytes[first..]
    };
    if significant.len() > 16 {
        return Err(P4rtError::OutOfRange(format!(
            "{what}: value of {} bytes does not fit in {width} bits",
            significant.len()
        )));
    }
    let value = significant
        .iter()
        .fold(0u128, |acc, b| acc << 8 | u128::from(*b));
    if width < 128 && value >> width != 0 {
        return Err(P4rtError::OutOfRange(format!(
            "{what}: value {value:#x} does not fit in {width} bits"
        )));
    }
    Ok(value)
}

/// The canonical byte string of `value`.
pub fn encode(value: u128) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    bytes[first..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_values_are_accepted_and_replies_are_canonical() {
        assert_eq!(decode(&[0, 0, 0, 5], 32, "f"), Ok(5));
        assert_eq!(decode(&[0, 0, 0, 0, 0, 5], 32, "f"), Ok(5));
        assert_eq!(decode(&[0], 9, "f"), Ok(0));
        assert_eq!(encode(0), vec![0]);
        assert_eq!(encode(5), vec![5]);
        assert_eq!(encode(0x0a00_0001), vec![10, 0, 0, 1]);
        assert_eq!(encode(0x100), vec![1, 0]);
    }

    #[test]
    fn wide_and_empty_values_are_refused() {
        assert!(matches!(
            decode(&[1, 0], 8, "f"),
            Err(P4rtError::OutOfRange(_))
        ));
        assert!(matches!(
            decode(&[0x02], 1, "f"),
            Err(P4rtError::OutOfRange(_))
        ));
        assert!(matches!(
            decode(&[1, 0, 0, 0], 24, "f"),
            Err(P4rtError::OutOfRange(_))
        ));
        assert!(matches!(
            decode(&[], 8, "f"),
            Err(P4rtError::InvalidArgument(_))
        ));
        assert_eq!(decode(&[0xff, 0xff, 0xff], 24, "f"), Ok(0xff_ffff));
    }
}
