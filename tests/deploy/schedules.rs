//! Schedules: how a spec's schedule is said to Nomad and to systemd, stated once.

use std::time::Duration;

use easytier_probe::domain::Schedule;

/// A job's schedule as a Nomad periodic cron. Nomad's parser (cronexpr) reads seconds only in its
/// 7-field form `sec min hour dom month dow year`; a 6-field expression there means
/// `min hour dom month dow year`. The specs' cron is `sec min hour dom month dow`, so it gains
/// the year; an `every` becomes the cron that fires at exactly that interval, which exists when
/// the interval divides a minute, an hour or a day.
pub(crate) fn nomad_cron(schedule: &Schedule) -> Result<String, String> {
    let six = match schedule {
        Schedule::Cron(cron) => {
            let fields: Vec<&str> = cron.split_whitespace().collect();
            let restricted = |f: &str| f != "*" && f != "?";
            if restricted(fields[3]) && restricted(fields[5]) {
                return Err(format!(
                    "cron {cron:?} restricts both day of month and day of week, which the \
                     built-in scheduler reads as AND and Nomad as OR"
                ));
            }
            cron.clone()
        }
        Schedule::Every(every) => {
            let s = every.as_secs();
            if every.subsec_nanos() != 0 || s == 0 {
                return Err(format!("every {every:?} is not a whole number of seconds"));
            }
            let step = |n: u64| {
                if n == 1 {
                    "*".to_string()
                } else {
                    format!("*/{n}")
                }
            };
            match s {
                s if s < 60 && 60 % s == 0 => format!("{} * * * * *", step(s)),
                s if s % 60 == 0 && s < 3600 && 3600 % s == 0 => {
                    format!("0 {} * * * *", step(s / 60))
                }
                s if s % 3600 == 0 && s < 86_400 && 86_400 % s == 0 => {
                    format!("0 0 {} * * *", step(s / 3600))
                }
                86_400 => "0 0 0 * * *".to_string(),
                s => {
                    return Err(format!(
                        "every = \"{s}s\" divides no minute, hour or day, so no cron fires at \
                         exactly that interval: pick one that does, or give the job a `cron`"
                    ))
                }
            }
        }
    };
    Ok(format!("{six} *"))
}

/// A spec's 6-field cron (`sec min hour dom month dow`, UTC, as the built-in scheduler reads it)
/// as a systemd `OnCalendar=` value. Numbers, `*`, `*/n`, `a/n`, `a-b` and lists map one to one;
/// anything else (`L`, `W`, `#`, steps over ranges) is refused rather than guessed.
pub(crate) fn systemd_calendar(cron: &str) -> Result<String, String> {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let [sec, min, hour, dom, month, dow] = fields[..] else {
        return Err(format!("cron {cron:?} must have 6 fields"));
    };
    let refuse = || format!("cron {cron:?}: no exact OnCalendar= form for this; extend the map");
    let number = |v: &str, first: u32| -> Result<String, String> {
        match v {
            "*" => Ok(format!("{first:02}")),
            v => v
                .parse::<u32>()
                .map(|n| format!("{n:02}"))
                .map_err(|_| refuse()),
        }
    };
    // One field of the date or time; `first` is where `*/n` starts counting.
    let field = |f: &str, first: u32| -> Result<String, String> {
        if f == "*" {
            return Ok("*".into());
        }
        f.split(',')
            .map(|part| match part.split_once('/') {
                Some((start, n)) => {
                    let n: u32 = n.parse().map_err(|_| refuse())?;
                    Ok(format!("{}/{n}", number(start, first)?))
                }
                None => match part.split_once('-') {
                    Some((a, b)) => Ok(format!("{}..{}", number(a, first)?, number(b, first)?)),
                    None => number(part, first),
                },
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.join(","))
    };
    let weekday = |d: &str| -> Result<&'static str, String> {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        match d.parse::<usize>() {
            Ok(n) if n <= 7 => Ok(DAYS[n % 7]),
            _ => DAYS
                .iter()
                .find(|day| day.eq_ignore_ascii_case(d))
                .copied()
                .ok_or_else(refuse),
        }
    };
    let days = match dow {
        "*" | "?" => String::new(),
        dow => {
            let parts = dow
                .split(',')
                .map(|part| match part.split_once('-') {
                    Some((a, b)) => Ok(format!("{}..{}", weekday(a)?, weekday(b)?)),
                    None => weekday(part).map(String::from),
                })
                .collect::<Result<Vec<_>, _>>()?;
            format!("{} ", parts.join(","))
        }
    };
    let dom = if dom == "?" { "*" } else { dom };
    Ok(format!(
        "{days}*-{}-{} {}:{}:{} UTC",
        field(month, 1)?,
        field(dom, 1)?,
        field(hour, 0)?,
        field(min, 0)?,
        field(sec, 0)?
    ))
}

#[test]
fn schedules_map_to_nomad_and_systemd() {
    let every = |s| Schedule::Every(Duration::from_secs(s));
    assert_eq!(nomad_cron(&every(5)).unwrap(), "*/5 * * * * * *");
    assert_eq!(nomad_cron(&every(1)).unwrap(), "* * * * * * *");
    assert_eq!(nomad_cron(&every(60)).unwrap(), "0 * * * * * *");
    assert_eq!(nomad_cron(&every(900)).unwrap(), "0 */15 * * * * *");
    assert_eq!(nomad_cron(&every(7200)).unwrap(), "0 0 */2 * * * *");
    assert_eq!(nomad_cron(&every(86_400)).unwrap(), "0 0 0 * * * *");
    assert!(nomad_cron(&every(45)).is_err());
    assert!(nomad_cron(&every(90)).is_err());
    let cron = |c: &str| Schedule::Cron(c.into());
    assert_eq!(
        nomad_cron(&cron("0 */5 * * * *")).unwrap(),
        "0 */5 * * * * *"
    );
    assert!(nomad_cron(&cron("0 0 12 1 * MON")).is_err());

    // Each of these was checked with `systemd-analyze calendar`.
    for (cron, calendar) in [
        ("0 */5 * * * *", "*-*-* *:00/5:00 UTC"),
        ("*/10 * * * * *", "*-*-* *:*:00/10 UTC"),
        ("30 0 3 * * MON-FRI", "Mon..Fri *-*-* 03:00:30 UTC"),
        ("0 15 10 * * 1,3,5", "Mon,Wed,Fri *-*-* 10:15:00 UTC"),
        ("0 0 12 * * 7", "Sun *-*-* 12:00:00 UTC"),
        ("0 0 0 1 */3 ?", "*-01/3-01 00:00:00 UTC"),
    ] {
        assert_eq!(systemd_calendar(cron).unwrap(), calendar, "{cron}");
    }
    assert!(systemd_calendar("0 0 0 L * *").is_err());
    assert!(systemd_calendar("0 0 0 * * 5#2").is_err());
}

/// A systemd time span as these units write them: `<n>s`, `<n>min`, `<n>h`, `<n>ms` or bare
/// seconds.
pub(crate) fn systemd_span(value: &str, origin: &str) -> Duration {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("{origin}: {value:?} is not a time span this test reads"));
    match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => panic!("{origin}: {value:?} is not a time span this test reads"),
    }
}
