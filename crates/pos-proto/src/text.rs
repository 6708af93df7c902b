//! How posd and posctl write a count in a sentence: "1 block", "2 blocks".

/// `n` and `noun`, the noun plural unless `n` is 1.
pub fn count(n: impl Into<u128>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular() {
        assert_eq!(super::count(1u64, "block"), "1 block");
        assert_eq!(super::count(0u64, "block"), "0 blocks");
        assert_eq!(super::count(101u64, "token"), "101 tokens");
    }
}
