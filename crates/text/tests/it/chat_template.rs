use rotor_text::{ChatTemplate, Error};
use serde_json::json;

use crate::model::smollm2;

const DEFAULT_SYSTEM: &str =
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

fn smollm2_template() -> ChatTemplate {
    let tk = &smollm2().tokenizer;
    ChatTemplate::new(
        &smollm2().chat_template,
        tk.bos_token().expect("bos"),
        tk.eos_token().expect("eos"),
    )
    .expect("SmolLM2's template compiles")
}

fn template_error(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Template { message }) => message,
        other => panic!("expected Error::Template, got {other:?}"),
    }
}

#[test]
fn user_only_gets_the_default_system_message() {
    let got = smollm2_template()
        .render(&json!([{"role": "user", "content": "Hi"}]), true)
        .expect("renders");
    assert_eq!(
        got,
        format!("{DEFAULT_SYSTEM}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    );
    let got = smollm2_template()
        .render(&json!([{"role": "user", "content": "Hi"}]), false)
        .expect("renders");
    assert_eq!(
        got,
        format!("{DEFAULT_SYSTEM}<|im_start|>user\nHi<|im_end|>\n")
    );
}

#[test]
fn explicit_system_message_replaces_the_default() {
    let messages = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"}
    ]);
    let got = smollm2_template().render(&messages, true).expect("renders");
    assert_eq!(
        got,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn multi_turn_conversation() {
    let messages = json!([
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3?"}
    ]);
    let got = smollm2_template().render(&messages, true).expect("renders");
    assert_eq!(
        got,
        format!(
            "{DEFAULT_SYSTEM}<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n\
             <|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n"
        )
    );
}

#[test]
fn rendered_prompt_tokenizes_to_42_tokens() {
    // The throughput prompt from notes/dependencies.md: 42 tokens with llama.cpp.
    let messages = json!([{"role": "user", "content": "Write a short story about a robot who learns to paint."}]);
    let prompt = smollm2_template().render(&messages, true).expect("renders");
    let ids = smollm2().tokenizer.encode(&prompt, true).expect("encodes");
    assert_eq!(ids.len(), 42);
    assert_eq!(ids[0], 1);
}

#[test]
fn content_parts_are_flattened() {
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "First line."},
        {"type": "text", "text": "Second line."}
    ]}]);
    let got = smollm2_template().render(&messages, true).expect("renders");
    assert_eq!(
        got,
        format!("{DEFAULT_SYSTEM}<|im_start|>user\nFirst line.\nSecond line.<|im_end|>\n<|im_start|>assistant\n")
    );
}

#[test]
fn non_text_parts_are_refused_by_type() {
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    ]}]);
    match smollm2_template().render(&messages, true) {
        Err(Error::UnsupportedContent {
            message_index,
            part_type,
        }) => {
            assert_eq!((message_index, part_type.as_str()), (0, "image_url"));
        }
        other => panic!("expected UnsupportedContent, got {other:?}"),
    }
}

#[test]
fn raise_exception_surfaces_the_templates_message() {
    let source = "{% for m in messages %}{% if m['role'] not in ['user', 'assistant'] %}\
                  {{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";
    let template = ChatTemplate::new(source, "", "").expect("compiles");
    let message = template_error(template.render(&json!([{"role": "tool", "content": "x"}]), true));
    assert_eq!(message, "Only user and assistant roles are supported!");
}

#[test]
fn python_string_methods_work() {
    let source = "{% for m in messages %}{% if m.content.startswith('/') %}CMD:{{ m.content[1:].strip().upper() }}\
                  {% else %}{{ m.content.strip() }}{% endif %}|{% endfor %}";
    let template = ChatTemplate::new(source, "", "").expect("compiles");
    let got = template
        .render(&json!([{"role": "user", "content": "/run  "}, {"role": "user", "content": "  plain "}]), false)
        .expect("renders");
    assert_eq!(got, "CMD:RUN|plain|");
}

#[test]
fn trim_and_lstrip_blocks_like_transformers() {
    // Indented block tags on their own lines leave no whitespace behind, as with HF's
    // trim_blocks=True, lstrip_blocks=True.
    let source = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}\n\
                  {% if add_generation_prompt %}\nGO{{ eos_token }}\n{% endif %}\n";
    let template = ChatTemplate::new(source, "<s>", "</s>").expect("compiles");
    let got = template.render(
        &json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
        true,
    );
    assert_eq!(got.expect("renders"), "[a]\n[b]\nGO</s>\n");
}

#[test]
fn loop_controls_namespace_bos_and_tojson() {
    let source = "{{ bos_token }}{% set ns = namespace(n=0) %}{% for m in messages %}{% if m.role == 'system' %}\
                  {% continue %}{% endif %}{% set ns.n = ns.n + 1 %}{% if ns.n > 1 %}{% break %}{% endif %}\
                  {{ m | tojson }}{% endfor %}";
    let template = ChatTemplate::new(source, "<s>", "</s>").expect("compiles");
    let got = template
        .render(
            &json!([
                {"role": "system", "content": "s"},
                {"role": "user", "content": "u1 <b>"},
                {"role": "user", "content": "u2"}
            ]),
            false,
        )
        .expect("renders");
    // Keys keep the message's own order, as Python's json.dumps keeps a dict's.
    assert_eq!(got, r#"<s>{"role": "user", "content": "u1 <b>"}"#);
}

#[test]
fn strftime_now_renders_a_date() {
    let template = ChatTemplate::new("{{ strftime_now('%Y-%m-%d') }}", "", "").expect("compiles");
    let got = template.render(&json!([]), false).expect("renders");
    let bytes = got.as_bytes();
    assert_eq!(got.len(), 10, "{got:?}");
    assert!(
        bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' && bytes[7] == b'-',
        "{got:?}"
    );
}

#[test]
fn broken_templates_are_template_errors() {
    let message = template_error(ChatTemplate::new(
        "{% for m in messages %}{{ m.content }}",
        "",
        "",
    ));
    assert!(
        message.contains("endfor") || message.contains("unexpected end"),
        "{message}"
    );
    // Runtime failure: adding a string and a list.
    let template = ChatTemplate::new("{{ 'a' + messages }}", "", "").expect("compiles");
    template_error(template.render(&json!([]), false));
}

#[test]
fn chatml_fallback() {
    let messages = json!([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]);
    let got = ChatTemplate::chatml()
        .render(&messages, true)
        .expect("renders");
    assert_eq!(
        got,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    );
}
