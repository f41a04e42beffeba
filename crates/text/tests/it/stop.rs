use rotor_text::{StopMatcher, StopOutcome};

fn outcome(emit: &str, stopped: bool) -> StopOutcome {
    StopOutcome {
        emit: emit.to_string(),
        stopped,
    }
}

fn matcher(stops: &[&str]) -> StopMatcher {
    StopMatcher::new(stops.iter().map(|s| s.to_string()).collect())
}

#[test]
fn stop_split_across_three_pushes() {
    let mut m = matcher(&["lo Wo"]);
    assert_eq!(m.push("Hel"), outcome("He", false));
    // Held "l" + "lo W": only "lo W" can still become the stop.
    assert_eq!(m.push("lo W"), outcome("l", false));
    assert_eq!(m.push("orld"), outcome("", true));
    assert!(m.is_stopped());
    assert_eq!(m.push("more"), outcome("", true));
    assert_eq!(m.flush(), "");
}

#[test]
fn earliest_of_several_stops_wins() {
    let mut m = matcher(&["world", "lo"]);
    assert_eq!(m.push("hello world"), outcome("hel", true));

    // "END" is complete first in the stream, although "STOP" starts earlier in the stop list.
    let mut m = matcher(&["STOP", "END"]);
    assert_eq!(m.push("abc EN"), outcome("abc ", false));
    assert_eq!(m.push("D STOP"), outcome("", true));
}

#[test]
fn partial_prefix_then_mismatch_releases_held_text() {
    let mut m = matcher(&["</answer>"]);
    assert_eq!(m.push("x </ans"), outcome("x ", false));
    assert_eq!(m.push("wer"), outcome("", false));
    assert_eq!(m.push("!"), outcome("</answer!", false));
    // A held prefix can restart inside itself: "<<" then "/a" -> the second '<' starts the stop.
    let mut m = matcher(&["</a>"]);
    assert_eq!(m.push("<<"), outcome("<", false));
    assert_eq!(m.push("/a>tail"), outcome("", true));
}

#[test]
fn stop_at_the_very_start_emits_nothing() {
    let mut m = matcher(&["<|end|>"]);
    assert_eq!(m.push("<|end|>after"), outcome("", true));
}

#[test]
fn no_stops_is_passthrough_and_empty_stops_are_ignored() {
    let mut m = matcher(&[]);
    assert_eq!(m.push("any text"), outcome("any text", false));
    let mut m = matcher(&[""]);
    assert_eq!(m.push("more"), outcome("more", false));
    assert_eq!(m.flush(), "");
}

#[test]
fn flush_releases_a_held_prefix_at_end_of_stream() {
    let mut m = matcher(&["\n\nUser:"]);
    assert_eq!(m.push("done.\n\nUs"), outcome("done.", false));
    assert_eq!(m.flush(), "\n\nUs");
    assert_eq!(m.flush(), "");
}

#[test]
fn multibyte_text_is_held_on_char_boundaries() {
    let mut m = matcher(&["éé!"]);
    assert_eq!(m.push("caféé"), outcome("caf", false));
    assert_eq!(m.push("?"), outcome("éé?", false));
    assert_eq!(m.push("🦀éé!"), outcome("🦀", true));
}
