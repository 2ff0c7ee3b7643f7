//! Days: bytes belong to the local date (lighttpd's time zone) on which their
//! request finished.

use std::fmt;

/// A calendar date, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i32);

impl Day {
    /// The local date of `epoch_secs` for a zone `utc_offset_secs` east of UTC.
    pub fn of(epoch_secs: i64, utc_offset_secs: i32) -> Day {
        Day((epoch_secs + i64::from(utc_offset_secs)).div_euclid(86_400) as i32)
    }

    /// (year, month 1-12, day 1-31), proleptic Gregorian (Howard Hinnant's
    /// civil_from_days).
    pub fn ymd(self) -> (i32, u32, u32) {
        let z = i64::from(self.0) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
        (y, m, d)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// Where the local UTC offset comes from; injectable for tests.
pub trait Zone {
    /// Seconds east of UTC in effect at `epoch_secs`.
    fn utc_offset(&self, epoch_secs: i64) -> i32;
}

/// The process's time zone (TZ / /etc/localtime), as lighttpd uses it.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalZone;

impl Zone for LocalZone {
    fn utc_offset(&self, epoch_secs: i64) -> i32 {
        let t = epoch_secs as libc::time_t;
        // SAFETY: libc::tm is plain integers and a nullable pointer
        // (tm_zone), for which all zeroes is a valid value.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: localtime_r(3) reads `t` and writes only into `tm`, both
        // ours and alive for the call; it is the thread-safe variant.
        if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
            return 0;
        }
        tm.tm_gmtoff as i32
    }
}

/// Maps request times to days, asking the zone at most once per second
/// (the request path calls this for every request).
#[derive(Debug)]
pub struct Calendar<Z: Zone = LocalZone> {
    zone: Z,
    /// `cached_day` holds for every second in `[valid_from, valid_until)`.
    valid_from: i64,
    valid_until: i64,
    cached_day: Day,
}

/// How long a day's bounds are trusted on a day the zone's offset changes
/// (a daylight-saving switch): such a day is re-checked every minute.
const SWITCH_DAY_RECHECK_SECS: i64 = 60;

impl<Z: Zone> Calendar<Z> {
    pub fn new(zone: Z) -> Self {
        Calendar {
            zone,
            valid_from: i64::MAX,
            valid_until: i64::MIN,
            cached_day: Day(0),
        }
    }

    /// The local day of `epoch_secs`. On the request path: two compares
    /// while the second lies in the day last computed; the zone is asked
    /// again only when it does not (a new day, or a clock set back).
    #[inline]
    pub fn day(&mut self, epoch_secs: i64) -> Day {
        if epoch_secs < self.valid_from || epoch_secs >= self.valid_until {
            self.compute(epoch_secs);
        }
        self.cached_day
    }

    /// The day last computed, if `epoch_secs` lies in it (never asks the
    /// zone; cannot panic).
    #[inline(always)]
    pub fn cached(&self, epoch_secs: i64) -> Option<Day> {
        (epoch_secs >= self.valid_from && epoch_secs < self.valid_until).then_some(self.cached_day)
    }

    /// The day of `now` and the seconds it holds for: from `now` to the
    /// next local midnight, if the zone's offset is the same at its last
    /// second (no switch in between, or one exactly at midnight, after
    /// which the next day is computed afresh); else for a minute.
    #[cold]
    fn compute(&mut self, now: i64) {
        let offset = self.zone.utc_offset(now);
        let day = Day::of(now, offset);
        let midnight = (i64::from(day.0) + 1) * 86_400 - i64::from(offset);
        let until = if self.zone.utc_offset(midnight - 1) == offset {
            midnight
        } else {
            (now + SWITCH_DAY_RECHECK_SECS).min(midnight)
        };
        self.cached_day = day;
        self.valid_from = now;
        self.valid_until = until.max(now + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(i32);
    impl Zone for Fixed {
        fn utc_offset(&self, _: i64) -> i32 {
            self.0
        }
    }

    #[test]
    fn dates() {
        assert_eq!(Day(0).to_string(), "1970-01-01");
        assert_eq!(Day::of(951_782_400, 0).to_string(), "2000-02-29");
        assert_eq!(Day::of(1_795_132_799, 0).to_string(), "2026-11-19");
        assert_eq!(Day::of(1_795_132_800, 0).to_string(), "2026-11-20");
        assert_eq!(Day::of(-1, 0).to_string(), "1969-12-31");
        assert_eq!(Day::of(4_102_444_800, 0).to_string(), "2100-01-01");
        for d in [-1000, 0, 59, 60, 365, 10_957, 20_000, 50_000] {
            let (y, m, dd) = Day(d).ymd();
            assert!(
                (1..=12).contains(&m) && (1..=31).contains(&dd),
                "{d}: {y}-{m}-{dd}"
            );
        }
    }

    #[test]
    fn midnight_edge_in_local_time() {
        // 2026-11-28 23:59:59 and 2026-11-29 00:00:00 in UTC+1
        // (1_795_910_399 is 2026-11-28 23:59:59 UTC).
        let before = 1_795_910_399 - 3600;
        let mut cal = Calendar::new(Fixed(3600));
        assert_eq!(cal.day(before).to_string(), "2026-11-28");
        assert_eq!(cal.day(before + 1).to_string(), "2026-11-29");
        // The same instants are still the 28th in UTC-5.
        let mut west = Calendar::new(Fixed(-5 * 3600));
        assert_eq!(west.day(before + 1).to_string(), "2026-11-28");
    }

    /// A zone that counts how often it is asked and switches from
    /// `before` to `after` seconds east of UTC at instant `at`.
    struct Switching {
        asked: std::cell::Cell<u32>,
        at: i64,
        before: i32,
        after: i32,
    }
    impl Zone for &Switching {
        fn utc_offset(&self, t: i64) -> i32 {
            self.asked.set(self.asked.get() + 1);
            if t < self.at {
                self.before
            } else {
                self.after
            }
        }
    }

    /// The day as computed from scratch for every second.
    fn truth(z: &Switching, t: i64) -> Day {
        let offset = if t < z.at { z.before } else { z.after };
        Day::of(t, offset)
    }

    #[test]
    fn the_zone_is_asked_once_a_day_not_once_a_second() {
        let z = Switching {
            asked: std::cell::Cell::new(0),
            at: i64::MAX,
            before: 3600,
            after: 3600,
        };
        let mut cal = Calendar::new(&z);
        let start = 1_795_910_399 - 3600 - 86_400; // a local midnight - 1
        for t in start..start + 2 * 86_400 + 5 {
            assert_eq!(cal.day(t), truth(&z, t), "{t}");
        }
        // Four days touched (the last second of one, two whole ones, the
        // first seconds of a fourth), two zone calls each.
        assert_eq!(z.asked.get(), 8);
        // A clock set back is recomputed, not trusted.
        assert_eq!(cal.day(start), truth(&z, start));
    }

    #[test]
    fn daylight_saving_switches_keep_every_second_on_its_day() {
        let midnight = 1_795_910_400 - 3600; // local midnight at UTC+1
        for at in [
            midnight,
            midnight - 1,
            midnight + 1,
            midnight + 2 * 3600,
            midnight - 3 * 3600,
        ] {
            for (before, after) in [(3600, 7200), (7200, 3600), (-10_800, -7200)] {
                let z = Switching {
                    asked: std::cell::Cell::new(0),
                    at,
                    before,
                    after,
                };
                let mut cal = Calendar::new(&z);
                // Every tenth second around the switch and both midnights.
                for t in (midnight - 30_000..midnight + 30_000).step_by(7) {
                    assert_eq!(
                        cal.day(t),
                        truth(&z, t),
                        "switch at {at}, {before}->{after}, t {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn local_zone_answers() {
        // Whatever the machine's zone, the offset is within a day.
        assert!(LocalZone.utc_offset(1_795_906_799).abs() < 86_400);
    }
}
