//! Gemma 3's and Qwen 2.5's official chat templates render as transformers renders them (jinja2
//! output recorded by scripts/golden/tokenizer_fixtures.py).

use std::path::{Path, PathBuf};

use rotor_text::ChatTemplate;
use serde::Deserialize;

use crate::model::qwen2;

#[derive(Deserialize)]
struct Renders {
    generator: String,
    renders: Vec<Render>,
}

#[derive(Deserialize)]
struct Render {
    /// File name under fixtures/chat_templates.
    template: String,
    case: String,
    bos_token: String,
    eos_token: String,
    messages: serde_json::Value,
    add_generation_prompt: bool,
    rendered: String,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn template_source(name: &str) -> String {
    let path = fixtures().join("chat_templates").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("template {} unreadable: {e}", path.display()))
}

fn renders() -> Renders {
    let path = fixtures().join("chat_template_renders.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} unreadable: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is valid JSON")
}

fn assert_renders_like_jinja2(template: &str) {
    let renders = renders();
    let cases: Vec<&Render> = renders
        .renders
        .iter()
        .filter(|r| r.template == template)
        .collect();
    assert!(cases.len() >= 2, "too few {template} cases");
    eprintln!("{template}: expected renders from {}", renders.generator);
    for render in cases {
        let chat = ChatTemplate::new(
            &template_source(&render.template),
            &render.bos_token,
            &render.eos_token,
        )
        .expect("template compiles");
        let got = chat
            .render(&render.messages, render.add_generation_prompt)
            .expect("renders");
        assert_eq!(got, render.rendered, "{template} / {}", render.case);
    }
}

#[test]
fn gemma3_template_renders_like_transformers() {
    assert_renders_like_jinja2("gemma3.jinja");
}

#[test]
fn qwen25_template_renders_like_transformers() {
    assert_renders_like_jinja2("qwen2.5.jinja");
}

#[test]
fn gemma3_template_refuses_roles_out_of_order() {
    let chat = ChatTemplate::new(&template_source("gemma3.jinja"), "<bos>", "<eos>")
        .expect("template compiles");
    let messages = serde_json::json!([
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"}
    ]);
    match chat.render(&messages, true) {
        Err(rotor_text::Error::Template { message }) => assert_eq!(
            message,
            "Conversation roles must alternate user/assistant/user/assistant/..."
        ),
        other => panic!("expected the template's exception, got {other:?}"),
    }
}

#[test]
fn qwen2_gguf_carries_the_qwen25_template() {
    assert_eq!(
        qwen2().chat_template.as_deref(),
        Some(template_source("qwen2.5.jinja").as_str())
    );
}
