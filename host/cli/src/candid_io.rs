//! Candid in and out: a canister's interface (from `--candid` or the
//! module's `candid:service` metadata), arguments typed by it, replies
//! decoded by it and printed as dfx prints them.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use candid::types::{Function, Type, TypeInner};
use candid::{IDLArgs, TypeEnv};
use candid_parser::utils::CandidSource;

use crate::args::{ArgType, Output};
use crate::exit::usage;

/// The deepest nesting of values accepted in an argument or printed from a
/// reply. Candid's parser, printer and JSON conversion recurse once per
/// level; far deeper input would overflow the stack.
pub const MAX_NESTING: usize = 256;

/// The custom sections that carry a canister's Candid interface.
const CANDID_SECTIONS: [&str; 2] = ["icp:public candid:service", "icp:private candid:service"];

/// A canister's Candid interface.
pub struct Interface {
    env: TypeEnv,
    /// The service, or the class (init arguments and service).
    actor: Type,
    /// Where it came from, for messages.
    pub source: String,
}

impl Interface {
    /// The interface in `--candid FILE`, else in the module's metadata,
    /// else none.
    pub fn find(candid: Option<&Path>, wasm: Option<&[u8]>) -> anyhow::Result<Option<Interface>> {
        if let Some(path) = candid {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read the Candid file {}: {e}", path.display())))?;
            return Interface::parse(&text, path.display().to_string()).map(Some);
        }
        let Some(text) = wasm.and_then(metadata) else { return Ok(None) };
        Interface::parse(&text, "the module's candid:service metadata".into()).map(Some)
    }

    fn parse(text: &str, source: String) -> anyhow::Result<Interface> {
        let (env, actor) =
            CandidSource::Text(text).load().map_err(|e| usage(format!("{source} is not valid Candid: {e}")))?;
        let actor = actor.ok_or_else(|| usage(format!("{source} defines no service")))?;
        Ok(Interface { env, actor, source })
    }

    /// The init arguments' types (empty for a plain service).
    pub fn init_args(&self) -> Vec<Type> {
        match self.actor.as_ref() {
            TypeInner::Class(args, _) => args.clone(),
            _ => Vec::new(),
        }
    }

    /// The type of `method`.
    pub fn method(&self, method: &str) -> anyhow::Result<Function> {
        let service = match self.actor.as_ref() {
            TypeInner::Class(_, service) => service.clone(),
            _ => self.actor.clone(),
        };
        self.env.get_method(&service, method).cloned().map_err(|_| {
            usage(format!("{} has no method {method:?}; check the name, or pass the right --candid", self.source))
        })
    }
}

/// The `candid:service` text in a module's custom sections, if any.
pub fn metadata(wasm: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let Ok(wasmparser::Payload::CustomSection(section)) = payload
            && CANDID_SECTIONS.contains(&section.name())
        {
            return String::from_utf8(section.data().to_vec()).ok();
        }
    }
    None
}

/// The argument from the command line or a file (`-`: stdin); `None` when
/// neither is given.
pub fn read_argument(inline: Option<&str>, file: Option<&Path>) -> anyhow::Result<Option<String>> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(usage("give the argument inline or with --argument-file, not both")),
        (Some(text), None) => Ok(Some(text.to_string())),
        (None, Some(path)) if path == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading the argument from stdin")?;
            Ok(Some(text))
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| usage(format!("cannot read the argument file {}: {e}", path.display()))),
        (None, None) => Ok(None),
    }
}

/// Encode an argument. Typed when `types` is known; inferred from the
/// values otherwise (the caller warns).
pub fn encode(text: Option<&str>, arg_type: ArgType, env: Option<(&Interface, &[Type])>) -> anyhow::Result<Vec<u8>> {
    let text = text.unwrap_or("()");
    if arg_type == ArgType::Raw {
        let hex_digits: String = text.split_whitespace().collect();
        return hex::decode(&hex_digits).map_err(|e| usage(format!("the raw argument is not hex: {e}")));
    }
    check_nesting(text)?;
    let args = candid_parser::parse_idl_args(text)
        .map_err(|e| usage(format!("the argument is not valid Candid: {e}; write it as a tuple such as '(42)'")))?;
    match env {
        Some((interface, types)) => args.to_bytes_with_types(&interface.env, types).map_err(|e| {
            usage(format!(
                "the argument does not match the expected type {}: {e}",
                candid::pretty::candid::pp_args(types).pretty(usize::MAX)
            ))
        }),
        None => args.to_bytes().map_err(|e| usage(format!("cannot encode the argument: {e}"))),
    }
}

/// A reply, printed as asked: typed by `rets` when known.
/// A reply as text and as JSON (one value per returned value), printed as
/// `output` asks; typed by `rets` when known. Decoded once.
pub fn render(
    bytes: &[u8],
    output: Output,
    env: Option<(&Interface, &[Type])>,
) -> anyhow::Result<(String, serde_json::Value)> {
    if output == Output::Raw {
        let text = hex::encode(bytes);
        return Ok((text.clone(), serde_json::Value::String(text)));
    }
    let args = decode(bytes, env)?;
    let options = idl2json::Idl2JsonOptions::default();
    let json = serde_json::Value::Array(args.args.iter().map(|v| idl2json::idl2json(v, &options)).collect());
    let text = match output {
        Output::Idl => candid::pretty::candid::value::pp_args(&args).pretty(usize::MAX).to_string(),
        Output::Json => serde_json::to_string_pretty(&json)?,
        _ => args.to_string(),
    };
    Ok((text, json))
}

/// A reply decoded, typed by `rets` when known.
fn decode(bytes: &[u8], env: Option<(&Interface, &[Type])>) -> anyhow::Result<IDLArgs> {
    let args = match env {
        Some((interface, types)) => IDLArgs::from_bytes_with_types(bytes, &interface.env, types),
        None => IDLArgs::from_bytes(bytes),
    }
    .with_context(|| format!("the reply is not valid Candid ({} bytes); print it with --output raw", bytes.len()))?;
    if args.args.iter().any(|v| depth(v) > MAX_NESTING) {
        anyhow::bail!("the reply nests values more than {MAX_NESTING} levels deep; print it with --output raw");
    }
    Ok(args)
}

/// How deep `value` nests, counted without recursion.
fn depth(value: &candid::IDLValue) -> usize {
    use candid::IDLValue;
    let mut deepest = 0;
    let mut stack = vec![(value, 1)];
    while let Some((value, level)) = stack.pop() {
        deepest = deepest.max(level);
        match value {
            IDLValue::Opt(inner) => stack.push((inner, level + 1)),
            IDLValue::Vec(items) => stack.extend(items.iter().map(|v| (v, level + 1))),
            IDLValue::Record(fields) => stack.extend(fields.iter().map(|f| (&f.val, level + 1))),
            IDLValue::Variant(variant) => stack.push((&variant.0.val, level + 1)),
            _ => {}
        }
    }
    deepest
}

/// Refuse Candid text nested deeper than [`MAX_NESTING`] before parsing it:
/// brackets and chains of `opt` each count a level (text literals are
/// skipped).
fn check_nesting(text: &str) -> anyhow::Result<()> {
    let (mut brackets, mut opts, mut deepest) = (0usize, 0usize, 0usize);
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            opts = if word == "opt" { opts + 1 } else { 0 };
            word.clear();
        }
        match c {
            '(' | '{' => brackets += 1,
            ')' | '}' => {
                brackets = brackets.saturating_sub(1);
                opts = 0;
            }
            '"' => {
                // Skip a text literal, escapes included.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => drop(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        deepest = deepest.max(brackets + opts);
    }
    if word == "opt" {
        deepest = deepest.max(brackets + opts + 1);
    }
    if deepest > MAX_NESTING {
        return Err(usage(format!("the argument nests values more than {MAX_NESTING} levels deep")));
    }
    Ok(())
}
