//! Rendering OpenAI chat messages into a prompt with the model's Jinja chat template.
//!
//! The environment imitates Hugging Face transformers' template sandbox: `trim_blocks` and
//! `lstrip_blocks` on, loop controls, `raise_exception(msg)`, `strftime_now(fmt)`, Python-style
//! `tojson`, and Python string/dict methods (`.strip()`, `.startswith()`, `.items()`, ...) via
//! minijinja-contrib's pycompat. Variables given to the template: `messages`, `tools` (the
//! request's OpenAI tool definitions, or none), `add_generation_prompt`, `bos_token`,
//! `eos_token`, plus any extra variables of the request (vLLM's `chat_template_kwargs`, e.g.
//! `enable_thinking`). Assistant `tool_calls[].function.arguments` arrive as JSON text in
//! OpenAI's API but templates index into them, so valid JSON is parsed into its value first
//! (as vLLM does); text that is not JSON is passed as it is.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{context, Environment, ErrorKind, Value};

use crate::messages::flatten_messages;
use crate::strftime::CivilTime;
use crate::{py_json, Error};

const TEMPLATE_NAME: &str = "chat_template";

/// ChatML without a default system message: the fallback for models that ship no template.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// The error `raise_exception` attaches, so rendering can report the template's own message.
#[derive(Debug)]
struct RaisedException(String);

impl std::fmt::Display for RaisedException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}

/// A compiled chat template plus the special-token strings it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The template reads a `tools` variable (so it describes the tools to the model itself).
    reads_tools: bool,
}

/// What a rendering needs besides the messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions<'a> {
    /// End with the opening of the assistant's turn.
    pub add_generation_prompt: bool,
    /// The OpenAI `tools` array, given to the template as `tools` (none when absent).
    pub tools: Option<&'a serde_json::Value>,
    /// Extra template variables; they cannot replace the standard ones.
    pub extra: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`; a syntax error gives [`Error::Template`].
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(template_error)?;
        env.set_syntax(syntax);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", |format: &str| {
            CivilTime::now().format(format)
        });
        env.add_filter("tojson", py_json::tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(template_error)?;
        let reads_tools = env
            .get_template(TEMPLATE_NAME)
            .map(|t| t.undeclared_variables(false).contains("tools"))
            .unwrap_or(false);
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
            reads_tools,
        })
    }

    /// Whether the template reads the `tools` variable, i.e. tells the model about the tools
    /// itself. When it does not, callers describe the tools some other way.
    pub fn reads_tools(&self) -> bool {
        self.reads_tools
    }

    /// The documented fallback for models without a template: ChatML
    /// (`<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n`
    /// when a generation prompt is asked for), no BOS, eos `<|im_end|>`, no default system message.
    pub fn chatml() -> ChatTemplate {
        ChatTemplate::new(CHATML, "", "<|im_end|>")
            .expect("invariant: the built-in ChatML template compiles")
    }

    /// Renders `messages`, the OpenAI array. A `content` given as a list of parts is flattened:
    /// text parts joined with "\n"; any other part type is [`Error::UnsupportedContent`].
    pub fn render(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
    ) -> Result<String, Error> {
        self.render_with(
            messages,
            RenderOptions {
                add_generation_prompt,
                ..RenderOptions::default()
            },
        )
    }

    /// Renders `messages` with tools and extra variables (see [`RenderOptions`]).
    pub fn render_with(
        &self,
        messages: &serde_json::Value,
        options: RenderOptions<'_>,
    ) -> Result<String, Error> {
        let messages = flatten_messages(messages)?;
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(template_error)?;
        let tools = match options.tools {
            Some(tools) => Value::from(Serde(tools)),
            None => Value::from(()),
        };
        let standard = context! {
            messages => Value::from(Serde(&messages)),
            tools => tools,
            add_generation_prompt => options.add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        let ctx = match options.extra {
            // The standard variables win over extra ones of the same name.
            Some(extra) => context! { ..standard, ..Value::from(Serde(extra)) },
            None => standard,
        };
        template.render(ctx).map_err(template_error)
    }
}

fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(
        minijinja::Error::new(ErrorKind::InvalidOperation, "template raised an exception")
            .with_source(RaisedException(message)),
    )
}

/// The template's own message for `raise_exception`, else minijinja's description with the line.
fn template_error(err: minijinja::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    while let Some(cause) = source {
        if let Some(raised) = cause.downcast_ref::<RaisedException>() {
            return Error::Template {
                message: raised.0.clone(),
            };
        }
        source = cause.source();
    }
    Error::Template {
        message: err.to_string(),
    }
}
