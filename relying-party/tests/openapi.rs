//! The OpenAPI document cannot rot: every route of the router is documented with its methods
//! and nothing else is, every `$ref` resolves, every path parameter is declared, and the error
//! codes in the document are exactly the codes the source can return.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use serde_json::Value;

const DOC: &str = include_str!("../src/openapi.json");
const SERVER: &str = include_str!("../src/http/mod.rs");
const SESSION: &str = include_str!("../src/http/session.rs");
const VERIFY: &str = include_str!("../src/verify.rs");
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("openapi.json is not valid JSON")
}

/// Every `.rs` file under `src/` and its subdirectories (named by their path below `src/`),
/// read at run time so that a new module is scanned too.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&dir, &dir, &mut out);
    out.sort();
    assert!(
        out.len() >= 8,
        "found only {:?}",
        out.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    out
}

/// The text between the `(` that ends `text[..open]` and its matching `)`.
fn call_args(text: &str, open: usize) -> &str {
    let mut depth = 1;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses after byte {open}");
}

/// The first string literal in `text`, if any.
fn first_literal(text: &str) -> Option<&str> {
    let start = text.find('"')? + 1;
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// `(path, method)` pairs from `.route("PATH", get(a).post(b))` calls in `router()`, and in the
/// `pub fn routes()` of any module whose routes `router()` merges.
fn router_routes() -> BTreeSet<(String, String)> {
    let router = &SERVER[SERVER.find("pub fn router(").expect("router() not found")..];
    let mut out = BTreeSet::new();
    routes_in(router, &mut out);
    for (file, text) in sources() {
        let Some(start) = text.find("pub fn routes(") else {
            continue;
        };
        let module = file.trim_end_matches(".rs");
        assert!(
            router.contains(&format!(".merge(crate::{module}::routes())")),
            "{file} has routes() that router() does not merge"
        );
        let body = &text[start..];
        routes_in(&body[..body.find("\n}\n").unwrap()], &mut out);
    }
    out
}

fn routes_in(router: &str, out: &mut BTreeSet<(String, String)>) {
    for (at, _) in router.match_indices(".route(") {
        let args = call_args(router, at + ".route(".len());
        let path = first_literal(args).expect("route without a path literal");
        let chain = &args[args.find(path).unwrap() + path.len() + 1..];
        for method in METHODS {
            let call = format!("{method}(");
            let found = chain.match_indices(&call).any(|(i, _)| {
                i == 0 || !chain[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if found {
                out.insert((path.to_owned(), method.to_owned()));
            }
        }
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                METHODS.contains(&method.as_str()),
                "{path}: `{method}` is not an operation (put parameters on the operations)"
            );
            out.push((path.clone(), method.clone(), op));
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = router_routes();
    assert!(routes.len() >= 20, "router parse found only {routes:?}");
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "undocumented: {missing:?}; documented but not routed: {extra:?}"
    );
}

#[test]
fn every_operation_is_described_and_declares_its_path_parameters() {
    let doc = doc();
    let mut ids = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let what = format!("{method} {path}");
        for key in ["operationId", "summary", "description"] {
            assert!(
                op[key].as_str().is_some_and(|s| !s.is_empty()),
                "{what}: no {key}"
            );
        }
        assert!(
            ids.insert(op["operationId"].as_str().unwrap().to_owned()),
            "{what}: duplicate operationId"
        );
        assert!(
            op["responses"]["200"].is_object(),
            "{what}: no 200 response"
        );
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_path, "{what}: path parameters");
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves() {
    let doc = doc();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50);
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r} is not a local reference"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

/// Every error code the source can produce: the code argument of `ApiError::new` /
/// `ApiError::bad_request` / `RpError::new` / `RpError::invalid` (and `Self::new` in the two
/// error.rs files), `VerifyError::code()`, and the webauthn-rs error mapping in
/// `registration_error`.
fn source_codes() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let mut add = |code: &str, file: &str| {
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{file}: {code:?} does not look like an error code; is the scan reading the wrong literal?"
        );
        codes.insert(code.to_owned());
    };
    for (file, text) in sources() {
        let mut markers = vec![
            "ApiError::new(",
            "ApiError::bad_request(",
            "RpError::new(",
            "RpError::invalid(",
        ];
        if file.ends_with("error.rs") {
            markers.push("Self::new(");
        }
        for marker in markers {
            for (at, _) in text.match_indices(marker) {
                if let Some(code) = first_literal(call_args(&text, at + marker.len())) {
                    add(code, &file);
                }
            }
        }
        if let Some(start) = text.find("fn registration_error(") {
            // `(code, message)` tuples: a literal right after `(` that looks like a code (the
            // messages and the `format!`/`starts_with` arguments do not).
            let body = &text[start..];
            let body = &body[..body.find("\n}\n").unwrap()];
            for (at, _) in body.match_indices('(') {
                let rest = body[at + 1..].trim_start();
                if let Some(lit) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                    if !lit.is_empty() && lit.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        add(lit, &file);
                    }
                }
            }
        }
    }
    for code in verify_error_codes() {
        add(&code, "verify.rs");
    }
    codes
}

/// The strings `VerifyError::code()` returns.
fn verify_error_codes() -> Vec<String> {
    let code_fn = &VERIFY[VERIFY.find("pub fn code(&self)").unwrap()..];
    let code_fn = &code_fn[..code_fn.find("\n    }\n").unwrap()];
    let codes: Vec<String> = code_fn
        .split("=> \"")
        .skip(1)
        .map(|part| part[..part.find('"').unwrap()].to_owned())
        .collect();
    assert!(codes.len() >= 15, "{codes:?}");
    codes
}

fn enum_codes(doc: &Value) -> BTreeSet<String> {
    doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .expect("Error.error.code has no enum")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn error_codes_in_the_document_are_exactly_the_sources() {
    let doc = doc();
    let documented = enum_codes(&doc);
    let source = source_codes();
    assert!(source.len() >= 45, "source scan found only {source:?}");
    let invented: Vec<_> = documented.difference(&source).collect();
    let undocumented: Vec<_> = source.difference(&documented).collect();
    assert!(
        invented.is_empty() && undocumented.is_empty(),
        "in the document's enum but not in the source: {invented:?}; \
         returned by the source but not in the enum: {undocumented:?}"
    );
    // Every code an operation lists is a real one, and every real one is listed somewhere
    // (`not_found` and `method_not_allowed` come from the router's fallbacks, not an operation).
    let mut listed = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        for code in op["x-error-codes"].as_array().into_iter().flatten() {
            let code = code.as_str().unwrap();
            assert!(
                documented.contains(code),
                "{method} {path} lists unknown code {code}"
            );
            listed.insert(code.to_owned());
        }
    }
    let unlisted: Vec<_> = documented
        .difference(&listed)
        .filter(|c| !["not_found", "method_not_allowed"].contains(&c.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "codes no operation lists: {unlisted:?}"
    );
}

#[test]
fn the_verify_endpoint_lists_every_verifier_code() {
    let doc = doc();
    let op = &doc["paths"]["/api/verify/assertion"]["post"];
    let listed: BTreeSet<&str> = op["x-error-codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in verify_error_codes() {
        assert!(
            listed.contains(code.as_str()),
            "{code} is missing on /api/verify/assertion"
        );
    }
    assert_eq!(op["security"][0]["apiToken"], Value::Array(Vec::new()));
}

#[test]
fn the_session_cookie_is_the_servers() {
    let doc = doc();
    let cookie = SESSION
        .split("pub const SESSION_COOKIE: &str = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("SESSION_COOKIE not found");
    assert_eq!(
        doc["components"]["securitySchemes"]["session"]["name"],
        cookie
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["session"]["in"],
        "cookie"
    );
}
