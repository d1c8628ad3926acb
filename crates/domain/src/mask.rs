//! Masking of sensitive values for screens, logs and exports (个人信息保护法): an ID number
//! keeps its first four and last four characters (`1101**********1234`), a mobile phone its
//! first three and last four (`138****5678`).

/// Masks an ID number or any other identifier: keeps 4 characters at each end.
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.trim().chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..4].iter().collect();
    out.extend(std::iter::repeat_n('*', chars.len() - 8));
    out.extend(&chars[chars.len() - 4..]);
    out
}

/// Masks a phone number: a mobile keeps its first 3 and last 4 digits; anything else keeps its
/// last 4 characters.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.trim().chars().collect();
    if chars.len() == 11 && chars[0] == '1' {
        let mut out: String = chars[..3].iter().collect();
        out.push_str("****");
        out.extend(&chars[7..]);
        return out;
    }
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let mut out: String = "*".repeat(chars.len() - 4);
    out.extend(&chars[chars.len() - 4..]);
    out
}

/// The last four characters of a sensitive value: what search by "last four digits" matches.
pub fn last4(value: &str) -> String {
    let chars: Vec<char> = value.trim().chars().collect();
    chars[chars.len().saturating_sub(4)..]
        .iter()
        .collect::<String>()
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_the_ends() {
        assert_eq!(mask_id_number("110105194912311234"), "1101**********1234");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("025-84561234"), "********1234");
        assert_eq!(last4("11010519491231002x"), "002X");
    }
}
