//! Builds the OpenAPI 3.1 document from the operation registry.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Required,
};

use super::api::Op;
use crate::auth::Access;

pub const API_VERSION: &str = "1.1.0";

pub fn document(ops: &[Op]) -> OpenApi {
    let mut paths = Paths::new();
    for op in ops {
        let mut b = OperationBuilder::new()
            .operation_id(Some(op.id))
            .tag(op.tag)
            .summary((!op.summary.is_empty()).then_some(op.summary));
        for name in path_params(op.path) {
            b = b.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::String)
                            .min_length(Some(1))
                            .max_length(Some(200)),
                    ))
                    .build(),
            );
        }
        if let Some(example) = op.body {
            let value: serde_json::Value = serde_json::from_str(example).unwrap_or_default();
            b = b.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new().example(Some(value)).build(),
                    )
                    .build(),
            ));
        }
        b = b
            .response(
                op.success.to_string(),
                ResponseBuilder::new()
                    .description("Success")
                    .content(op.produces, ContentBuilder::new().build())
                    .build(),
            )
            .response(
                "default",
                ResponseBuilder::new()
                    .description("Problem (RFC 9457)")
                    .content("application/problem+json", ContentBuilder::new().build())
                    .build(),
            );
        match op.access {
            Access::Public => {}
            Access::Staff(roles) => {
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                b = b
                    .description(Some(format!("Roles: {}.", names.join(", "))))
                    .security(SecurityRequirement::new("session", Vec::<String>::new()))
                    .security(SecurityRequirement::new("apiKey", Vec::<String>::new()));
            }
            Access::Customer => {
                b = b.description(Some("Portal customer session.")).security(
                    SecurityRequirement::new("portalSession", Vec::<String>::new()),
                );
            }
        }
        paths.add_path_operation(op.path, vec![http_method(&op.method)], b.build());
    }
    let components = ComponentsBuilder::new()
        .security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("lumirecrm_session"))),
        )
        .security_scheme(
            "portalSession",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("lumirecrm_portal_session"))),
        )
        .security_scheme(
            "apiKey",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("LumireCRM engine API")
                .version(API_VERSION)
                .description(Some(
                    "The LumireCRM /v1 API. Errors are application/problem+json (RFC 9457).",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

fn http_method(m: &axum::http::Method) -> HttpMethod {
    match *m {
        axum::http::Method::POST => HttpMethod::Post,
        axum::http::Method::PATCH => HttpMethod::Patch,
        axum::http::Method::PUT => HttpMethod::Put,
        axum::http::Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

pub fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}
