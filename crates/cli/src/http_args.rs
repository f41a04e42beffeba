//! The HTTP server's flags, shared by `rotor serve` and `rotor frontend` ([`HttpArgs`]), and
//! their validation into the frontend's [`FrontendConfig`]: API keys, CORS origins, the request
//! body limit and the busy thresholds of overload protection.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use rotor_frontend::{AllowedOrigins, ApiKeys, BusyThresholds, FrontendConfig, ParserSetting};

/// Flags of the OpenAI-compatible HTTP server.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Require this API key (`Authorization: Bearer KEY` or `x-api-key: KEY`) on every route but
    /// /health, /live, /metrics and /openapi.json. Repeat for several keys.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "ROTOR_API_KEY",
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// Also accept the keys in FILE: one per line; blank lines and lines starting with `#` are
    /// skipped.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Require the API key on /metrics too.
    #[arg(long)]
    pub protect_metrics: bool,
    /// Browser origins allowed to call the API (CORS), comma-separated
    /// (`https://app.example.com,http://localhost:3000`), or `*` for any. Default: none, and no
    /// CORS headers are sent.
    #[arg(long, value_name = "ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Largest request body accepted (`16MiB`, `512KiB`, bytes); larger ones get 413.
    #[arg(long, value_name = "SIZE", default_value = "16MiB")]
    pub max_request_body: String,
    /// Overload protection: a worker whose KV cache is at least this full (a fraction in (0, 1],
    /// e.g. 0.95) is busy; when every worker of a model is busy, new requests get 503 with
    /// Retry-After. Default: off.
    #[arg(long, value_name = "FRACTION")]
    pub busy_kv_threshold: Option<f64>,
    /// Overload protection: a worker with more than N requests waiting for admission is busy
    /// (0: as soon as one waits). Default: off.
    #[arg(long, value_name = "N")]
    pub busy_queue_threshold: Option<u64>,
    /// Tool-call parser for every model's answers: `auto` (from the chat template; hermes when
    /// it names no format), `none` (requests with tools get 400), or one of hermes,
    /// llama3_json, mistral, pythonic, qwen3_coder, phi4_mini_json.
    #[arg(long, value_name = "NAME", default_value = "auto")]
    pub tool_call_parser: String,
    /// Reasoning parser (`<think>…</think>` → `reasoning_content`): `auto` (from the chat
    /// template), `none`, or one of deepseek_r1, qwen3, think.
    #[arg(long, value_name = "NAME", default_value = "auto")]
    pub reasoning_parser: String,
    /// Responses API: most responses kept (in this process's memory) for GET /v1/responses/{id}
    /// and `previous_response_id`; the oldest is evicted first. 0 keeps none.
    #[arg(long, value_name = "N", default_value_t = rotor_frontend::responses_api::DEFAULT_MAX_STORED_RESPONSES)]
    pub max_stored_responses: usize,
}

/// Smallest `--max-request-body`: below this not even a short chat request fits.
const MIN_BODY_LIMIT_BYTES: u64 = 1024;

impl HttpArgs {
    pub fn validate(&self) -> Result<FrontendConfig> {
        let api_keys = self.api_keys()?;
        if self.protect_metrics && api_keys.is_empty() {
            bail!(
                "--protect-metrics needs an API key (--api-key, --api-key-file or ROTOR_API_KEY)"
            );
        }
        let allowed_origins = if self.allowed_origins.is_empty() {
            None
        } else {
            Some(AllowedOrigins::parse(&self.allowed_origins).context("--allowed-origins")?)
        };
        let busy = BusyThresholds {
            kv_usage: self.busy_kv_threshold,
            waiting_requests: self.busy_queue_threshold,
        }
        .validate()
        .context("--busy-kv-threshold")?;
        let tool_call_parser = ParserSetting::parse_tool(&self.tool_call_parser)
            .map_err(|err| anyhow::anyhow!("--tool-call-parser: {err}"))?;
        let reasoning_parser = ParserSetting::parse_reasoning(&self.reasoning_parser)
            .map_err(|err| anyhow::anyhow!("--reasoning-parser: {err}"))?;
        Ok(FrontendConfig {
            tool_call_parser,
            reasoning_parser,
            body_limit_bytes: self.body_limit_bytes()?,
            api_keys,
            protect_metrics: self.protect_metrics,
            allowed_origins,
            busy,
            max_stored_responses: self.max_stored_responses,
            ..FrontendConfig::default()
        })
    }

    /// The keys of `--api-key` (or ROTOR_API_KEY) and `--api-key-file`; errors name where the
    /// bad key came from, never the key.
    fn api_keys(&self) -> Result<ApiKeys> {
        let mut keys = ApiKeys::default();
        for (i, key) in self.api_keys.iter().enumerate() {
            keys.add(key)
                .with_context(|| format!("--api-key (or ROTOR_API_KEY) number {}", i + 1))?;
        }
        if let Some(path) = &self.api_key_file {
            add_key_file(&mut keys, path)?;
        }
        Ok(keys)
    }

    fn body_limit_bytes(&self) -> Result<usize> {
        let text = self.max_request_body.trim();
        let context = || format!("--max-request-body {text:?}");
        if text.contains('.') {
            bail!("--max-request-body {text:?}: give a size such as 16MiB, not a fraction");
        }
        let bytes = crate::args::parse_memory(text, None).with_context(context)?;
        if bytes < MIN_BODY_LIMIT_BYTES {
            bail!("--max-request-body must be at least 1KiB, got {bytes} bytes");
        }
        usize::try_from(bytes).with_context(context)
    }
}

fn add_key_file(keys: &mut ApiKeys, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--api-key-file {}", path.display()))?;
    let before = keys.len();
    for (number, line) in text.lines().enumerate() {
        let key = line.trim();
        if key.is_empty() || key.starts_with('#') {
            continue;
        }
        keys.add(key)
            .with_context(|| format!("--api-key-file {} line {}", path.display(), number + 1))?;
    }
    if keys.len() == before {
        bail!(
            "--api-key-file {} has no keys (only blank lines and # comments)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        http: HttpArgs,
    }

    fn parse(argv: &[&str]) -> Result<FrontendConfig> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))?;
        cli.http.validate()
    }

    #[test]
    fn defaults_are_open_and_unlimited_by_load() {
        let cfg = parse(&[]).unwrap();
        assert!(cfg.api_keys.is_empty());
        assert!(!cfg.protect_metrics);
        assert_eq!(cfg.allowed_origins, None);
        assert_eq!(cfg.body_limit_bytes, 16 << 20);
        assert!(cfg.busy.is_off());
        assert_eq!(cfg.max_stored_responses, 1000);
        let cfg = parse(&["--max-stored-responses", "7"]).unwrap();
        assert_eq!(cfg.max_stored_responses, 7);
    }

    #[test]
    fn keys_from_flags_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(
            &file,
            "# team keys\n\n  sk-file-1  \n#sk-commented\nsk-file-2\n",
        )
        .unwrap();
        let cfg = parse(&[
            "--api-key",
            "sk-a",
            "--api-key=sk-b",
            "--api-key-file",
            file.to_str().unwrap(),
            "--protect-metrics",
        ])
        .unwrap();
        assert_eq!(cfg.api_keys.len(), 4);
        for key in ["sk-a", "sk-b", "sk-file-1", "sk-file-2"] {
            assert!(cfg.api_keys.accepts(key), "{key}");
        }
        assert!(!cfg.api_keys.accepts("#sk-commented"));
        assert!(!cfg.api_keys.accepts("sk-commented"));
        assert!(cfg.protect_metrics);
    }

    #[test]
    fn bad_keys_and_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "# nothing\n\n").unwrap();
        let spaced = dir.path().join("spaced");
        std::fs::write(&spaced, "sk-ok\nsk bad\n").unwrap();
        let cases: [(&[&str], &str); 5] = [
            (&["--api-key", ""], "--api-key (or ROTOR_API_KEY) number 1"),
            (&["--api-key-file", empty.to_str().unwrap()], "has no keys"),
            (&["--api-key-file", spaced.to_str().unwrap()], "line 2"),
            (
                &["--api-key-file", "/nonexistent/keys"],
                "--api-key-file /nonexistent/keys",
            ),
            (&["--protect-metrics"], "--protect-metrics needs an API key"),
        ];
        for (argv, said) in cases {
            let err = format!("{:#}", parse(argv).expect_err("must fail"));
            assert!(err.contains(said), "{argv:?}: {err}");
            assert!(!err.contains("sk bad"), "the key is not repeated: {err}");
        }
    }

    #[test]
    fn origins_body_limit_and_thresholds() {
        let cfg = parse(&[
            "--allowed-origins",
            "https://app.example.com,http://localhost:3000/",
            "--max-request-body",
            "64KiB",
            "--busy-kv-threshold",
            "0.95",
            "--busy-queue-threshold",
            "0",
        ])
        .unwrap();
        assert_eq!(
            cfg.allowed_origins,
            Some(AllowedOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ]))
        );
        assert_eq!(cfg.body_limit_bytes, 64 << 10);
        assert_eq!(cfg.busy.kv_usage, Some(0.95));
        assert_eq!(cfg.busy.waiting_requests, Some(0));
        assert_eq!(
            parse(&["--allowed-origins", "*"]).unwrap().allowed_origins,
            Some(AllowedOrigins::Any)
        );
        for bad in [
            &["--allowed-origins", "app.example.com"][..],
            &["--allowed-origins", "*,https://a.example"],
            &["--max-request-body", "0.5"],
            &["--max-request-body", "100"],
            &["--max-request-body", "12XB"],
            &["--busy-kv-threshold", "0"],
            &["--busy-kv-threshold", "1.5"],
            &["--busy-queue-threshold", "-1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parser_flags_name_their_choices() {
        use rotor_text::{ReasoningParserKind, ToolParserKind};
        let cfg = parse(&[]).unwrap();
        assert_eq!(cfg.tool_call_parser, ParserSetting::Auto);
        assert_eq!(cfg.reasoning_parser, ParserSetting::Auto);
        let cfg = parse(&[
            "--tool-call-parser",
            "llama3_json",
            "--reasoning-parser",
            "qwen3",
        ])
        .unwrap();
        assert_eq!(
            cfg.tool_call_parser,
            ParserSetting::Named(ToolParserKind::Llama3Json)
        );
        assert_eq!(
            cfg.reasoning_parser,
            ParserSetting::Named(ReasoningParserKind::Qwen3)
        );
        assert_eq!(
            parse(&["--tool-call-parser", "none"])
                .unwrap()
                .tool_call_parser,
            ParserSetting::Off
        );
        let err = format!(
            "{:#}",
            parse(&["--tool-call-parser", "hermez"]).unwrap_err()
        );
        assert!(
            err.contains("--tool-call-parser") && err.contains("hermes, llama3_json"),
            "{err}"
        );
        let err = format!("{:#}", parse(&["--reasoning-parser", "o1"]).unwrap_err());
        assert!(
            err.contains("--reasoning-parser") && err.contains("deepseek_r1, qwen3, think"),
            "{err}"
        );
    }
}
