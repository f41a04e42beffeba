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

#[derive(Deserialize)]
struct ToolRender {
    case: String,
    template: String,
    bos_token: String,
    eos_token: String,
    /// OpenAI form: `function.arguments` is JSON text.
    messages: serde_json::Value,
    tools: Option<serde_json::Value>,
    add_generation_prompt: bool,
    rendered: String,
}

/// Qwen 2.5's template with `tools`, assistant `tool_calls` (arguments sent as JSON text, as
/// OpenAI clients do) and `tool` messages renders as transformers renders the parsed messages
/// (scripts/golden/tool_template_renders.py).
#[test]
fn qwen25_template_renders_tools_and_tool_calls_like_transformers() {
    #[derive(Deserialize)]
    struct File {
        generator: String,
        renders: Vec<ToolRender>,
    }
    let path = fixtures().join("chat_template_tool_renders.json");
    let file: File = serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture"))
        .expect("fixture is valid JSON");
    assert!(file.renders.len() >= 4, "too few cases");
    eprintln!("expected renders from {}", file.generator);
    for render in &file.renders {
        let chat = ChatTemplate::new(
            &template_source(&render.template),
            &render.bos_token,
            &render.eos_token,
        )
        .expect("template compiles");
        assert!(chat.reads_tools(), "qwen2.5 reads `tools`");
        let got = chat
            .render_with(
                &render.messages,
                rotor_text::RenderOptions {
                    add_generation_prompt: render.add_generation_prompt,
                    tools: render.tools.as_ref(),
                    extra: None,
                },
            )
            .expect("renders");
        assert_eq!(got, render.rendered, "case {}", render.case);
    }
}

#[test]
fn extra_template_variables_reach_the_template_but_cannot_replace_messages() {
    let chat = ChatTemplate::new(
        "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n{% endif %}{{ messages[0].content }}",
        "",
        "",
    )
    .expect("compiles");
    assert!(!chat.reads_tools());
    let messages = serde_json::json!([{"role": "user", "content": "hi"}]);
    let extra: serde_json::Map<String, serde_json::Value> = serde_json::from_value(
        serde_json::json!({"enable_thinking": false, "messages": [{"content": "evil"}]}),
    )
    .unwrap();
    let got = chat
        .render_with(
            &messages,
            rotor_text::RenderOptions {
                add_generation_prompt: true,
                tools: None,
                extra: Some(&extra),
            },
        )
        .expect("renders");
    assert_eq!(got, "<think>\n\n</think>\nhi");
}
