//! Redis-style glob matching for `KEYS`, `SCAN ... MATCH` and `CONFIG GET`: `*`, `?`,
//! `[abc]`, `[^abc]`, `[a-z]` and `\x` escapes, byte-wise (binary-safe).
//!
//! Iterative with single-star backtracking, so the cost is O(pattern x key) at worst; a
//! pattern like `a*a*a*a*b` cannot make it exponential (Redis had to bound its recursive
//! matcher for exactly that).

/// Whether `key` matches the glob `pattern`.
pub fn matches(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0usize, 0usize);
    // Position after the last `*` seen and the key position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if let Some(&c) = pattern.get(p) {
            match c {
                b'*' => {
                    while pattern.get(p) == Some(&b'*') {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, k));
                    continue;
                }
                b'?' => {
                    p += 1;
                    k += 1;
                    continue;
                }
                b'[' => {
                    let (hit, next) = class(pattern, p + 1, key[k]);
                    if hit {
                        p = next;
                        k += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == key[k] {
                        p += 2;
                        k += 1;
                        continue;
                    }
                }
                c => {
                    if c == key[k] {
                        p += 1;
                        k += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last star swallow one more byte, or fail.
        match star {
            Some((sp, sk)) => {
                p = sp;
                k = sk + 1;
                star = Some((sp, sk + 1));
            }
            None => return false,
        }
    }
    while pattern.get(p) == Some(&b'*') {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `b` against the class whose body starts at `p` (just after `[`). Returns whether
/// it matched and the pattern position after the closing `]` (an unterminated class runs to
/// the end of the pattern, as in Redis).
fn class(pattern: &[u8], mut p: usize, b: u8) -> (bool, usize) {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    loop {
        match pattern.get(p) {
            None => break,
            Some(b']') => {
                p += 1;
                break;
            }
            Some(b'\\') if p + 1 < pattern.len() => {
                hit |= pattern[p + 1] == b;
                p += 2;
            }
            Some(&lo) if pattern.get(p + 1) == Some(&b'-') && p + 2 < pattern.len() => {
                let hi = pattern[p + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                hit |= (lo..=hi).contains(&b);
                p += 3;
            }
            Some(&c) => {
                hit |= c == b;
                p += 1;
            }
        }
    }
    (hit != negate, p)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_examples() {
        let m = |p: &str, k: &str| matches(p.as_bytes(), k.as_bytes());
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo") && m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hello") && m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed range");
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("key:*", "key:12") && !m("key:*", "kez:12"));
        assert!(!m("*a*a*a*a*a*a*b", &"a".repeat(40)));
        assert!(m("[abc", "a"), "unterminated class");
        assert!(m("ab\\", "ab\\"), "trailing backslash is literal");
    }
}
