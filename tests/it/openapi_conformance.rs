//! Vellum's generated OpenAPI document against the reference node's (`docs/reference/
//! codex-openapi.yaml`): for every reference operation, the same path and method, operation id,
//! tags, parameters (name, location, required, type), request body and responses (status codes,
//! content types, schemas with their fields, types, formats, enums, required fields and
//! component names, `$ref`s resolved), so that a client generated from either document has the
//! same methods and types. Vellum's additions (endpoints, fields, status codes) are allowed.
//!
//! The differences Vellum keeps are listed, each with its reason, in `docs/openapi-differences.md`
//! as lines `- METHOD /path aspect: reason`. A difference not listed fails the test, and so does
//! a listed one that no longer occurs, so that the list stays true.
//!
//! Also here, the reference's behaviour beyond its document: the log level takes the reference's
//! chronicles syntax on a running node, and one it cannot read is refused, not installed; an
//! availability's reservations are listed (an unknown availability is not found, and without
//! persistence mode the endpoint says so).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn reference() -> anyhow::Result<Value> {
    let path = repo_file("docs/reference/codex-openapi.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_norway::from_str(&text)?)
}

fn vellum() -> anyhow::Result<Value> {
    Ok(serde_json::to_value(node::api::openapi())?)
}

/// `- METHOD /path aspect: reason` lines of the differences file.
fn listed_differences() -> anyhow::Result<BTreeMap<String, String>> {
    let path = repo_file("docs/openapi-differences.md");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let Some(entry) = line.strip_prefix("- ") else { continue };
        let method = entry.split(' ').next().unwrap_or_default();
        if !METHODS.iter().any(|m| m.eq_ignore_ascii_case(method)) || method != method.to_ascii_uppercase() {
            continue;
        }
        let (key, reason) =
            entry.split_once(": ").with_context(|| format!("line {}: no ': reason' in {line:?}", n + 1))?;
        let key = key.trim().trim_matches('`').to_owned();
        if reason.trim().is_empty() {
            bail!("line {}: {key} has no reason", n + 1);
        }
        if out.insert(key.clone(), reason.trim().to_owned()).is_some() {
            bail!("line {}: {key} is listed twice", n + 1);
        }
    }
    Ok(out)
}

/// A schema with `$ref`, `allOf` and 3.1's `null` types folded away.
#[derive(Debug, Default)]
struct Shape {
    /// The component it is, if reached through a `$ref`.
    name: Option<String>,
    ty: Option<String>,
    format: Option<String>,
    nullable: bool,
    enumeration: Option<BTreeSet<String>>,
    properties: BTreeMap<String, Value>,
    required: BTreeSet<String>,
    items: Option<Value>,
}

impl Shape {
    /// Whether generated clients make a named type of it (objects and enums).
    fn is_named_kind(&self) -> bool {
        self.ty.as_deref() == Some("object") || !self.properties.is_empty() || self.enumeration.is_some()
    }
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> anyhow::Result<(Option<String>, &'a Value)> {
    let mut name = None;
    let mut schema = schema;
    for _ in 0..16 {
        let Some(r) = schema.get("$ref").and_then(Value::as_str) else { return Ok((name, schema)) };
        let component = r.strip_prefix("#/components/schemas/").with_context(|| format!("unsupported $ref {r}"))?;
        name = Some(component.to_owned());
        schema = doc
            .pointer(&format!("/components/schemas/{component}"))
            .with_context(|| format!("$ref {r} names no component"))?;
    }
    bail!("$ref chain too long")
}

fn shape(doc: &Value, schema: &Value) -> anyhow::Result<Shape> {
    let (name, schema) = resolve(doc, schema)?;
    let mut out = Shape { name, ..Shape::default() };
    fold(doc, schema, &mut out, 0)?;
    Ok(out)
}

fn fold(doc: &Value, schema: &Value, out: &mut Shape, depth: usize) -> anyhow::Result<()> {
    if depth > 16 {
        bail!("schema nested too deep");
    }
    let (_, schema) = resolve(doc, schema)?;
    // 3.1 writes an optional value as a choice between it and null.
    for key in ["oneOf", "anyOf"] {
        if let Some(choices) = schema.get(key).and_then(Value::as_array) {
            let (nulls, others): (Vec<&Value>, Vec<&Value>) =
                choices.iter().partition(|c| c.get("type").and_then(Value::as_str) == Some("null"));
            if !nulls.is_empty() {
                out.nullable = true;
            }
            match others.as_slice() {
                [one] => {
                    if out.name.is_none() {
                        out.name = resolve(doc, one)?.0;
                    }
                    fold(doc, one, out, depth + 1)?;
                }
                _ => out.ty = Some(format!("{key}({})", others.len())),
            }
        }
    }
    for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        fold(doc, part, out, depth + 1)?;
    }
    match schema.get("type") {
        Some(Value::String(t)) => out.ty = Some(t.clone()),
        Some(Value::Array(ts)) => {
            for t in ts.iter().filter_map(Value::as_str) {
                if t == "null" { out.nullable = true } else { out.ty = Some(t.to_owned()) }
            }
        }
        _ => {}
    }
    if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        out.nullable = true;
    }
    if let Some(f) = schema.get("format").and_then(Value::as_str) {
        out.format = Some(f.to_owned());
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        out.enumeration = Some(values.iter().filter(|v| !v.is_null()).map(|v| v.to_string()).collect());
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        out.properties.extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
        if out.ty.is_none() {
            out.ty = Some("object".into());
        }
    }
    for r in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        out.required.insert(r.to_owned());
    }
    if let Some(items) = schema.get("items") {
        out.items = Some(items.clone());
    }
    Ok(())
}

/// The differences found, by key (`METHOD /path aspect`), with what differs.
#[derive(Default)]
struct Differences(BTreeMap<String, String>);

impl Differences {
    fn add(&mut self, key: String, detail: String) {
        self.0.entry(key).or_insert(detail);
    }
}

struct Docs<'a> {
    reference: &'a Value,
    vellum: &'a Value,
}

fn show(v: &Option<impl std::fmt::Debug>) -> String {
    v.as_ref().map_or("none".into(), |v| format!("{v:?}"))
}

impl Docs<'_> {
    /// Compares a reference schema with Vellum's at `at` (`$.field[]`), `request` for bodies a
    /// client sends. Whether a value may be null is compared here only where nothing else says
    /// whether it may be left out (`nulls`): a field is compared by whether it is optional
    /// (not required, or nullable), which is what a generated type makes of both.
    #[allow(clippy::too_many_arguments)]
    fn schema(&self, diffs: &mut Differences, key: &str, at: &str, r: &Value, v: &Value, request: bool, nulls: bool) {
        let (rs, vs) = match (shape(self.reference, r), shape(self.vellum, v)) {
            (Ok(rs), Ok(vs)) => (rs, vs),
            (r, v) => {
                diffs.add(format!("{key} {at} unreadable"), format!("{:?} / {:?}", r.err(), v.err()));
                return;
            }
        };
        let d = |diffs: &mut Differences, kind: &str, detail: String| diffs.add(format!("{key} {at} {kind}"), detail);
        if rs.is_named_kind() && rs.name != vs.name {
            d(diffs, "name", format!("reference {} / Vellum {}", show(&rs.name), show(&vs.name)));
        }
        if rs.ty != vs.ty {
            d(diffs, "type", format!("reference {} / Vellum {}", show(&rs.ty), show(&vs.ty)));
            return;
        }
        if rs.format.is_some() && rs.format != vs.format {
            d(diffs, "format", format!("reference {} / Vellum {}", show(&rs.format), show(&vs.format)));
        }
        if nulls && rs.nullable != vs.nullable {
            d(diffs, "nullable", format!("reference {} / Vellum {}", rs.nullable, vs.nullable));
        }
        if rs.enumeration != vs.enumeration {
            d(diffs, "enum", format!("reference {} / Vellum {}", show(&rs.enumeration), show(&vs.enumeration)));
        }
        for (field, rf) in &rs.properties {
            let here = format!("{at}.{field}");
            let Some(vf) = vs.properties.get(field) else {
                diffs.add(format!("{key} {here} missing"), "a reference field Vellum lacks".into());
                continue;
            };
            let optional = |s: &Shape, doc: &Value, f: &Value| {
                !s.required.contains(field) || shape(doc, f).is_ok_and(|f| f.nullable)
            };
            let (ro, vo) = (optional(&rs, self.reference, rf), optional(&vs, self.vellum, vf));
            if ro != vo {
                diffs.add(format!("{key} {here} optional"), format!("reference {ro} / Vellum {vo}"));
            }
            self.schema(diffs, key, &here, rf, vf, request, false);
        }
        if request {
            for field in vs.required.iter().filter(|f| !rs.properties.contains_key(*f)) {
                diffs.add(format!("{key} {at}.{field} extra required"), "a client of the reference omits it".into());
            }
        }
        match (&rs.items, &vs.items) {
            (Some(ri), Some(vi)) => self.schema(diffs, key, &format!("{at}[]"), ri, vi, request, true),
            (Some(_), None) => d(diffs, "items", "Vellum's array has no items".into()),
            _ => {}
        }
    }

    fn content(&self, diffs: &mut Differences, key: &str, r: &Value, v: Option<&Value>, request: bool) {
        let Some(rc) = r.get("content").and_then(Value::as_object) else { return };
        for (ctype, rmedia) in rc {
            let Some(vmedia) = v.and_then(|v| v.pointer(&format!("/content/{}", ctype.replace('/', "~1")))) else {
                diffs.add(format!("{key} {ctype} missing"), "a content type Vellum does not document".into());
                continue;
            };
            match (rmedia.get("schema"), vmedia.get("schema")) {
                (Some(rs), Some(vs)) => self.schema(diffs, &format!("{key} {ctype}"), "$", rs, vs, request, true),
                (Some(_), None) => diffs.add(format!("{key} {ctype} $ missing"), "no schema".into()),
                _ => {}
            }
        }
    }

    fn operation(&self, diffs: &mut Differences, path: &str, method: &str, r: &Value) {
        let op = format!("{} {path}", method.to_ascii_uppercase());
        let Some(v) = self.vellum.pointer(&format!("/paths/{}/{method}", path.replace('~', "~0").replace('/', "~1")))
        else {
            diffs.add(format!("{op} missing"), "an operation Vellum does not document".into());
            return;
        };
        if r.get("operationId") != v.get("operationId") {
            diffs.add(format!("{op} operationId"), format!("{} / {}", r["operationId"], v["operationId"]));
        }
        if r.get("tags") != v.get("tags") {
            diffs.add(format!("{op} tags"), format!("{} / {}", r["tags"], v["tags"]));
        }
        let params =
            |o: &Value| -> Vec<Value> { o.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default() };
        let id = |p: &Value| {
            let place = p["in"].as_str().unwrap_or_default().to_owned();
            let name = p["name"].as_str().unwrap_or_default();
            // Header names are not case-sensitive.
            let name = if place == "header" { name.to_ascii_lowercase() } else { name.to_owned() };
            (place, name)
        };
        let required = |p: &Value| p.get("required").and_then(Value::as_bool).unwrap_or(false);
        let vparams = params(v);
        for rp in params(r) {
            let (place, name) = id(&rp);
            let key = format!("{op} parameter {place} {name}");
            let Some(vp) = vparams.iter().find(|vp| id(vp) == (place.clone(), name.clone())) else {
                let elsewhere = vparams.iter().find(|vp| id(vp).1 == name).map(|vp| id(vp).0);
                diffs.add(format!("{key} missing"), format!("Vellum has it in {}", show(&elsewhere)));
                continue;
            };
            if required(&rp) != required(vp) {
                diffs.add(format!("{key} required"), format!("{} / {}", required(&rp), required(vp)));
            }
            // A parameter is absent or has a value: null means nothing in a query or a header.
            if let (Some(rs), Some(vs)) = (rp.get("schema"), vp.get("schema")) {
                self.schema(diffs, &key, "$", rs, vs, true, false);
            }
        }
        for vp in vparams.iter().filter(|vp| required(vp)) {
            if !params(r).iter().any(|rp| id(rp) == id(vp)) {
                let (place, name) = id(vp);
                diffs.add(format!("{op} parameter {place} {name} extra required"), "unknown to the reference".into());
            }
        }
        if let Some(rb) = r.get("requestBody") {
            match v.get("requestBody") {
                None => diffs.add(format!("{op} requestBody missing"), "Vellum documents no body".into()),
                Some(vb) => {
                    if required(rb) != required(vb) {
                        diffs.add(format!("{op} requestBody required"), format!("{} / {}", required(rb), required(vb)));
                    }
                    self.content(diffs, &format!("{op} requestBody"), rb, Some(vb), true);
                }
            }
        }
        for (status, rr) in r.get("responses").and_then(Value::as_object).into_iter().flatten() {
            let key = format!("{op} response {status}");
            match v.pointer(&format!("/responses/{status}")) {
                None => diffs.add(format!("{key} missing"), "a status code Vellum does not document".into()),
                Some(vr) => self.content(diffs, &key, rr, Some(vr), false),
            }
        }
    }
}

fn compare(reference: &Value, vellum: &Value) -> Differences {
    let docs = Docs { reference, vellum };
    let mut diffs = Differences::default();
    for (path, item) in reference["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                docs.operation(&mut diffs, path, method, op);
            }
        }
    }
    diffs
}

#[test]
fn openapi_document_conforms_to_the_reference() -> anyhow::Result<()> {
    let (reference, vellum) = (reference()?, vellum()?);
    let found = compare(&reference, &vellum).0;
    let listed = listed_differences()?;
    let unlisted: Vec<String> =
        found.iter().filter(|(k, _)| !listed.contains_key(*k)).map(|(k, d)| format!("- {k}: ({d})")).collect();
    let stale: Vec<&String> = listed.keys().filter(|k| !found.contains_key(*k)).collect();
    if !unlisted.is_empty() || !stale.is_empty() {
        bail!(
            "Vellum's OpenAPI document and the reference differ where docs/openapi-differences.md does not say so:\n{}\n\
             listed differences that no longer occur (remove them):\n{}",
            unlisted.join("\n"),
            stale.iter().map(|k| format!("- {k}")).collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

#[test]
fn vellum_document_is_well_formed() -> anyhow::Result<()> {
    // What a client generator needs beyond the reference's operations: an operation id for every
    // operation, none twice, and path parameters that are exactly the path's placeholders.
    let doc = vellum()?;
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().context("no paths")? {
        let placeholders: BTreeSet<&str> =
            path.split('/').filter_map(|part| part.strip_prefix('{')?.strip_suffix('}')).collect();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let id = op["operationId"].as_str().with_context(|| format!("{method} {path}: no operationId"))?;
            anyhow::ensure!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            let in_path: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            anyhow::ensure!(in_path == placeholders, "{method} {path}: path parameters {in_path:?}");
        }
    }
    Ok(())
}

#[test]
fn openapi_comparison_sees_what_it_is_meant_to_see() -> anyhow::Result<()> {
    // The checker itself, on a small document against altered copies of it.
    let base: Value = serde_json::json!({
        "paths": {"/x/{id}": {"get": {
            "operationId": "getX", "tags": ["Data"],
            "parameters": [{"in": "path", "name": "id", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/X"}}}}}
        }}},
        "components": {"schemas": {"X": {"type": "object", "required": ["a"], "properties": {
            "a": {"type": "integer", "format": "int64"},
            "s": {"type": "string", "enum": ["one", "two"]},
            "n": {"type": "string", "nullable": true}
        }}}}
    });
    assert!(compare(&base, &base).0.is_empty());
    let keys = |alter: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        alter(&mut v);
        compare(&base, &v).0.into_keys().collect::<Vec<_>>()
    };
    let op = "GET /x/{id}";
    assert_eq!(keys(&|v| v["paths"]["/x/{id}"]["get"]["operationId"] = "other".into()), [format!("{op} operationId")]);
    assert_eq!(
        keys(&|v| v["paths"]["/x/{id}"]["get"]["parameters"][0]["in"] = "query".into()),
        [format!("{op} parameter path id missing"), format!("{op} parameter query id extra required")]
    );
    assert_eq!(
        keys(&|v| {
            v["components"]["schemas"]["Y"] = v["components"]["schemas"]["X"].clone();
            let response = &mut v["paths"]["/x/{id}"]["get"]["responses"]["200"];
            response["content"]["application/json"]["schema"]["$ref"] = "#/components/schemas/Y".into();
        }),
        [format!("{op} response 200 application/json $ name")]
    );
    assert_eq!(
        keys(&|v| v["components"]["schemas"]["X"]["properties"]["a"]["format"] = "int32".into()),
        [format!("{op} response 200 application/json $.a format")]
    );
    assert_eq!(
        keys(&|v| v["components"]["schemas"]["X"]["required"] = serde_json::json!([])),
        [format!("{op} response 200 application/json $.a optional")]
    );
    assert_eq!(
        keys(&|v| v["components"]["schemas"]["X"]["properties"]["a"]["nullable"] = true.into()),
        [format!("{op} response 200 application/json $.a optional")]
    );
    assert_eq!(
        keys(&|v| {
            v["components"]["schemas"]["X"]["properties"]["s"] = serde_json::json!({"type": "string"});
        }),
        [format!("{op} response 200 application/json $.s enum")]
    );
    // 3.1's way of writing a nullable field is the same as 3.0's.
    assert!(
        keys(&|v| {
            v["components"]["schemas"]["X"]["properties"]["n"] = serde_json::json!({"type": ["string", "null"]});
        })
        .is_empty()
    );
    // Additions are allowed.
    assert!(
        keys(&|v| {
            v["components"]["schemas"]["X"]["properties"]["extra"] = serde_json::json!({"type": "string"});
            v["paths"]["/x/{id}"]["get"]["responses"]["503"] = serde_json::json!({"description": "x"});
        })
        .is_empty()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_takes_the_reference_syntax_and_refuses_junk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("node.log");
    let node = vellum_testkit::TestNode::start_logged(&dir.path().join("node"), &[], Some(&log))?;
    let set = |level: &str| {
        let encoded: String = level
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let request = node.http.post(node.url(&format!("/debug/chronicles/loglevel?level={encoded}")));
        async move {
            let resp = request.send().await?;
            anyhow::Ok((resp.status().as_u16(), resp.text().await?))
        }
    };
    for junk in ["loud", "INFO;", ";", "TRACE:", ""] {
        let (status, text) = set(junk).await?;
        assert_eq!(status, 400, "{junk:?}: {text}");
        assert!(text.contains("invalid log level"), "{junk:?}: {text}");
    }
    for good in ["info,vellum::net=debug", "notice", "INFO;TRACE:blockexcnetwork,restapi;DEBUG:libp2p_kad"] {
        let (status, text) = set(good).await?;
        assert_eq!(status, 200, "{good:?}: {text}");
    }
    // The node still logs at INFO after all of these (junk used to leave it logging nothing).
    let before = std::fs::read_to_string(&log)?.lines().count();
    node.upload(vellum_testkit::test_bytes(1000, 3)).await?;
    vellum_testkit::logs::wait_for("an INFO line after the upload", std::time::Duration::from_secs(10), || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(&log)?;
            Ok(text.lines().skip(before).any(|l| l.contains(" INFO ")))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_are_listed_per_availability() -> anyhow::Result<()> {
    use vellum_testkit::{MarketNet, TestNode, json, strs};
    let net = MarketNet::start().await?;
    let host = TestNode::start(&net.node_dir("host"), &strs(&net.node_flags(1, &net.anvil.endpoint())?))?;
    let body = serde_json::json!({
        "totalSize": 8192, "duration": 60, "minPricePerBytePerSecond": "1", "totalCollateral": "10",
    });
    let created = json(host.http.post(host.url("/sales/availability")).json(&body).send().await?).await?;
    let id = created["id"].as_str().context("an availability id")?.to_owned();
    // No request was served: nothing is reserved.
    let listed = host.get_json(&format!("/sales/availability/{id}/reservations")).await?;
    assert_eq!(listed, serde_json::json!([]));
    let bare = id.trim_start_matches("0x");
    assert_eq!(host.get_json(&format!("/sales/availability/{bare}/reservations")).await?, listed);
    let unknown = host.get(&format!("/sales/availability/0x{}/reservations", "ab".repeat(32))).await?;
    assert_eq!(unknown.status(), 404);
    let invalid = host.get("/sales/availability/0x12/reservations").await?;
    assert_eq!(invalid.status(), 400);
    let plain = TestNode::start(&net.node_dir("plain"), &[])?;
    let resp = plain.get(&format!("/sales/availability/{id}/reservations")).await?;
    assert_eq!(resp.status(), 503, "without persistence mode");
    Ok(())
}
