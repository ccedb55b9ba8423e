//! `GET /api/v1/openapi.json`: the OpenAPI 3.0 document of every route. A test
//! checks it against the route table both ways.

use actix_web::HttpResponse;

/// The document, kept next to the routes it describes.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn get() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::super::ROUTES;
    use super::DOCUMENT;

    #[test]
    fn document_and_routes_agree() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.0.3");
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is served but not documented"
            );
        }
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                assert!(
                    ROUTES.contains(&(method.as_str(), path.as_str())),
                    "{method} {path} is documented but not served"
                );
            }
        }
        // Every reference resolves.
        let text = DOCUMENT;
        for part in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling reference {name}"
            );
        }
    }
}
