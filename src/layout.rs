//! Whether a lighttpd build has the structure layouts the module's
//! bindings were generated for, as far as a running lighttpd shows it (see
//! `lighttpd/build_check.rs`, which looks): pure logic, unit-tested.

/// What the bindings assumed, and what the running process has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pcre {
    pub pcre2: bool,
    pub pcre1: bool,
}

/// The refusal for bindings made with `assumed` in a lighttpd with `found`.
pub fn compare(assumed: Pcre, found: Pcre) -> Result<(), String> {
    let describe = |p: Pcre| match (p.pcre2, p.pcre1) {
        (true, _) => "with PCRE2 (HAVE_PCRE2_H)",
        (false, true) => "with PCRE (HAVE_PCRE_H)",
        (false, false) => "without PCRE",
    };
    let same = if assumed.pcre2 {
        found.pcre2
    } else if assumed.pcre1 {
        found.pcre1 && !found.pcre2
    } else {
        !found.pcre2 && !found.pcre1
    };
    if same {
        return Ok(());
    }
    Err(format!(
        "this mod_bw_counter.so was built for a lighttpd configured {}, but the running \
         lighttpd was built {}: their structures differ, so the module refuses to load. \
         Build it against this lighttpd's own configured source tree (LIGHTTPD_SRC, with \
         its config.h; see the README)",
        describe(assumed),
        describe(found)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PCRE2: Pcre = Pcre {
        pcre2: true,
        pcre1: false,
    };
    const PCRE1: Pcre = Pcre {
        pcre2: false,
        pcre1: true,
    };
    const NONE: Pcre = Pcre {
        pcre2: false,
        pcre1: false,
    };

    #[test]
    fn the_same_build_loads_and_any_other_is_refused_with_both_named() {
        for (assumed, found, ok) in [
            (PCRE2, PCRE2, true),
            // A process with both (another library pulled PCRE 1 in).
            (
                PCRE2,
                Pcre {
                    pcre2: true,
                    pcre1: true,
                },
                true,
            ),
            (PCRE1, PCRE1, true),
            (NONE, NONE, true),
            (PCRE2, NONE, false),
            (PCRE2, PCRE1, false),
            (NONE, PCRE2, false),
            (PCRE1, PCRE2, false),
        ] {
            let result = compare(assumed, found);
            assert_eq!(result.is_ok(), ok, "{assumed:?} in {found:?}");
            if let Err(line) = result {
                assert!(line.contains("LIGHTTPD_SRC"), "{line}");
                assert!(line.contains(" refuses to load"), "{line}");
            }
        }
        assert_eq!(
            compare(PCRE2, NONE).unwrap_err(),
            "this mod_bw_counter.so was built for a lighttpd configured with PCRE2 \
             (HAVE_PCRE2_H), but the running lighttpd was built without PCRE: their \
             structures differ, so the module refuses to load. Build it against this \
             lighttpd's own configured source tree (LIGHTTPD_SRC, with its config.h; see \
             the README)"
        );
    }
}
