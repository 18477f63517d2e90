//! The lines the drivers print (src/test/programs/driver.h), parsed.

use alloc8::testing::Rule;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Violation { rule: Rule, index: Option<usize>, slots: Vec<u32>, detail: String },
    Crash { signal: i32, index: Option<usize>, doing: String },
    Hang { index: Option<usize>, doing: String },
    Done(Vec<(String, String)>),
}

fn index(field: &str) -> Option<usize> {
    field.parse::<i64>().ok().filter(|i| *i >= 0).map(|i| i as usize)
}

pub fn parse(line: &str) -> Option<Line> {
    let fields: Vec<&str> = line.split('\t').collect();
    match fields[0] {
        "VIOLATION" if fields.len() >= 5 => Some(Line::Violation {
            rule: Rule::from_id(fields[1])?,
            index: index(fields[2]),
            slots: fields[3].split(',').filter_map(|s| s.parse().ok()).collect(),
            detail: fields[4..].join("\t"),
        }),
        "CRASH" if fields.len() >= 3 => {
            Some(Line::Crash { signal: fields[1].parse().ok()?, index: index(fields[2]), doing: fields.get(3).unwrap_or(&"").to_string() })
        }
        "HANG" if fields.len() >= 2 => Some(Line::Hang { index: index(fields[1]), doing: fields.get(2).unwrap_or(&"").to_string() }),
        "DONE" => {
            Some(Line::Done(fields[1..].iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()))
        }
        _ => None,
    }
}

/// The driver's first line that says how it went.
pub fn first(stdout: &str) -> Option<Line> {
    stdout.lines().find_map(parse)
}

/// A value of a DONE line.
pub fn done_value(line: &Line, key: &str) -> Option<String> {
    match line {
        Line::Done(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_lines() {
        assert_eq!(
            parse("VIOLATION\toverlap\t17\t3,9\tp3 overlaps p9"),
            Some(Line::Violation { rule: Rule::Overlap, index: Some(17), slots: vec![3, 9], detail: "p3 overlaps p9".into() })
        );
        assert_eq!(parse("CRASH\t11\t-1\tmalloc"), Some(Line::Crash { signal: 11, index: None, doing: "malloc".into() }));
        assert_eq!(parse("HANG\t5\t"), Some(Line::Hang { index: Some(5), doing: String::new() }));
        let done = parse("DONE\tops=10\tthreads=4").unwrap();
        assert_eq!(done_value(&done, "threads").as_deref(), Some("4"));
        assert_eq!(parse("VIOLATION\tno-such-rule\t1\t\tx"), None);
        assert_eq!(first("noise\nDONE\tops=1\n"), Some(Line::Done(vec![("ops".into(), "1".into())])));
    }
}
