//! Request snippets generated from the OpenAPI document, in the reference's five forms.

use serde_json::{Value, json};

pub fn for_document(doc: &Value, base: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let Some(paths) = doc["paths"].as_object() else {
        return out;
    };
    for (path, item) in paths {
        let Some(methods) = item.as_object() else {
            continue;
        };
        for (method, op) in methods {
            let Some(id) = op["operationId"].as_str() else {
                continue;
            };
            let body = op["requestBody"]["content"]["application/json"]["example"].clone();
            let body = (!body.is_null()).then(|| body.to_string());
            let url = format!("{base}{path}");
            let m = method.to_uppercase();
            out.push(json!({
                "operationId": id,
                "method": m,
                "path": path,
                "tag": op["tags"][0],
                "summary": op["summary"],
                "curl": curl(&m, &url, body.as_deref()),
                "fetch": fetch(&m, &url, body.as_deref()),
                "httpx": httpx(&m, &url, body.as_deref()),
                "php": php(&m, &url, body.as_deref()),
                "go": go(&m, &url, body.as_deref()),
            }));
        }
    }
    out.sort_by(|a, b| a["operationId"].as_str().cmp(&b["operationId"].as_str()));
    out
}

fn curl(m: &str, url: &str, body: Option<&str>) -> String {
    let mut s = format!("curl -X {m} '{url}' \\\n  -b 'lumirecrm_session=YOUR_SESSION'");
    if let Some(b) = body {
        s.push_str(&format!(
            " \\\n  -H 'Content-Type: application/json' \\\n  -d '{}'",
            b.replace('\'', "'\\''")
        ));
    }
    s
}

fn fetch(m: &str, url: &str, body: Option<&str>) -> String {
    let mut s = format!("await fetch('{url}', {{\n  method: '{m}',\n  credentials: 'include',");
    if let Some(b) = body {
        s.push_str(&format!(
            "\n  headers: {{ 'Content-Type': 'application/json' }},\n  body: JSON.stringify({b}),"
        ));
    }
    s.push_str("\n});");
    s
}

fn httpx(m: &str, url: &str, body: Option<&str>) -> String {
    let mut s = format!(
        "import httpx\n\nr = httpx.request('{m}', '{url}', cookies={{'lumirecrm_session': 'YOUR_SESSION'}}"
    );
    if let Some(b) = body {
        s.push_str(&format!(", json={b}"));
    }
    s.push_str(")\nprint(r.status_code, r.json())");
    s
}

fn php(m: &str, url: &str, body: Option<&str>) -> String {
    let mut s = format!(
        "<?php\n$ch = curl_init('{url}');\ncurl_setopt($ch, CURLOPT_CUSTOMREQUEST, '{m}');\ncurl_setopt($ch, CURLOPT_RETURNTRANSFER, true);\ncurl_setopt($ch, CURLOPT_COOKIE, 'lumirecrm_session=YOUR_SESSION');"
    );
    if let Some(b) = body {
        s.push_str(&format!(
            "\ncurl_setopt($ch, CURLOPT_HTTPHEADER, ['Content-Type: application/json']);\ncurl_setopt($ch, CURLOPT_POSTFIELDS, '{}');",
            b.replace('\'', "\\'")
        ));
    }
    s.push_str("\n$response = curl_exec($ch);\ncurl_close($ch);");
    s
}

fn go(m: &str, url: &str, body: Option<&str>) -> String {
    let reader = match body {
        Some(b) => format!("strings.NewReader(`{b}`)"),
        None => "nil".into(),
    };
    let mut s = format!(
        "req, _ := http.NewRequest(\"{m}\", \"{url}\", {reader})\nreq.AddCookie(&http.Cookie{{Name: \"lumirecrm_session\", Value: \"YOUR_SESSION\"}})"
    );
    if body.is_some() {
        s.push_str("\nreq.Header.Set(\"Content-Type\", \"application/json\")");
    }
    s.push_str("\nresp, err := http.DefaultClient.Do(req)");
    s
}
