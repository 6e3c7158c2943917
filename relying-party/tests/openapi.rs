//! The OpenAPI document cannot rot: every route of the router is documented with its methods
//! and nothing else is, every `$ref` resolves, and every documented error code is one the
//! source can return.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use serde_json::Value;

const DOC: &str = include_str!("../src/openapi.json");
const SERVER: &str = include_str!("../src/server.rs");
const SOURCES: &[&str] = &[
    include_str!("../src/server.rs"),
    include_str!("../src/rp.rs"),
    include_str!("../src/error.rs"),
    include_str!("../src/verify.rs"),
];

/// `(path, method)` pairs from `.route("PATH", get(a).post(b))` calls in `router()`.
fn router_routes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut rest = SERVER;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let rest_trim = rest.trim_start();
        let path_start = rest_trim.find('"').unwrap() + 1;
        let path_len = rest_trim[path_start..].find('"').unwrap();
        let path = &rest_trim[path_start..path_start + path_len];
        // The method chain runs to the route call's closing parenthesis.
        let after = &rest_trim[path_start + path_len + 1..];
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let chain = &after[..end];
        for method in ["get", "post", "patch", "delete", "put"] {
            let call = format!("{method}(");
            let found = chain.match_indices(&call).any(|(i, _)| {
                i == 0 || !chain[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if found {
                out.insert((path.to_owned(), method.to_owned()));
            }
        }
    }
    out
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((path.clone(), method.clone()));
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let doc: Value = serde_json::from_str(DOC).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = router_routes();
    assert!(routes.len() >= 20, "router parse found only {routes:?}");
    let documented = documented_routes(&doc);
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "undocumented: {missing:?}; documented but not routed: {extra:?}"
    );
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
    let doc: Value = serde_json::from_str(DOC).unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50);
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap();
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

#[test]
fn every_documented_error_code_exists_in_the_source() {
    let doc: Value = serde_json::from_str(DOC).unwrap();
    let mut codes = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(list) = op["x-error-codes"].as_array() {
                codes.extend(list.iter().map(|c| c.as_str().unwrap().to_owned()));
            }
        }
    }
    assert!(codes.len() >= 40, "{codes:?}");
    for code in &codes {
        let literal = format!("\"{code}\"");
        assert!(
            SOURCES.iter().any(|s| s.contains(&literal)),
            "documented error code {code} is not in the source"
        );
    }
    // And the verifier's codes are all documented on the backend endpoint.
    let verify_op = &doc["paths"]["/api/verify/assertion"]["post"]["x-error-codes"];
    let documented: BTreeSet<&str> = verify_op
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let verify_src = SOURCES[3];
    let code_fn = &verify_src[verify_src.find("pub fn code(&self)").unwrap()..];
    let code_fn = &code_fn[..code_fn.find("\n    }\n").unwrap()];
    for part in code_fn.split("=> \"").skip(1) {
        let code = &part[..part.find('"').unwrap()];
        assert!(
            documented.contains(code),
            "{code} is missing on /api/verify/assertion"
        );
    }
}
