//! The operation registry: every `/v1` operation is registered once, with its method, path,
//! operationId, tag, access rule and request example. The registry builds both the axum router
//! (wrapping each handler in the access guard) and the OpenAPI document, so the document
//! cannot drift from what is served.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

use crate::app::AppState;
use crate::auth::authorize::{OpGuard, authorize};
use crate::auth::{Access, Role};

#[derive(Clone, Debug)]
pub struct Op {
    pub method: Method,
    pub path: &'static str,
    pub id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub body: Option<&'static str>,
    pub success: u16,
    pub produces: &'static str,
    /// Only a person signed in with a session may call it: an API key gets 403
    /// (`session_required`). For what guards the account itself: TOTP, passwords, sessions.
    pub session_only: bool,
}

impl Op {
    fn new(method: Method, path: &'static str, id: &'static str, tag: &'static str) -> Op {
        let success = if method == Method::DELETE {
            204
        } else if method == Method::POST {
            201
        } else {
            200
        };
        Op {
            method,
            path,
            id,
            tag,
            summary: "",
            access: Access::Public,
            body: None,
            success,
            produces: "application/json",
            session_only: false,
        }
    }

    /// Refuses API keys (see [`Op::session_only`]).
    pub fn session_only(mut self) -> Op {
        self.session_only = true;
        self
    }
    pub fn get(path: &'static str, id: &'static str, tag: &'static str) -> Op {
        Op::new(Method::GET, path, id, tag)
    }
    pub fn post(path: &'static str, id: &'static str, tag: &'static str) -> Op {
        Op::new(Method::POST, path, id, tag)
    }
    pub fn patch(path: &'static str, id: &'static str, tag: &'static str) -> Op {
        Op::new(Method::PATCH, path, id, tag)
    }
    pub fn put(path: &'static str, id: &'static str, tag: &'static str) -> Op {
        Op::new(Method::PUT, path, id, tag)
    }
    pub fn delete(path: &'static str, id: &'static str, tag: &'static str) -> Op {
        Op::new(Method::DELETE, path, id, tag)
    }
    pub fn summary(mut self, s: &'static str) -> Op {
        self.summary = s;
        self
    }
    pub fn staff(mut self, roles: &'static [Role]) -> Op {
        self.access = Access::Staff(roles);
        self
    }
    pub fn customer(mut self) -> Op {
        self.access = Access::Customer;
        self
    }
    pub fn body(mut self, example: &'static str) -> Op {
        self.body = Some(example);
        self
    }
    /// A POST that acts on an existing resource (approve, revoke, ...) answers 200, not 201.
    pub fn action(mut self) -> Op {
        self.success = 200;
        self
    }
    pub fn status(mut self, code: u16) -> Op {
        self.success = code;
        self
    }
    pub fn csv(mut self) -> Op {
        self.produces = "text/csv";
        self
    }
    pub fn pdf(mut self) -> Op {
        self.produces = "application/pdf";
        self
    }
}

pub struct Api {
    state: Option<AppState>,
    router: Router<AppState>,
    ops: Vec<Op>,
}

impl Api {
    /// A registry that builds a router bound to `state`.
    pub fn serving(state: AppState) -> Api {
        Api {
            state: Some(state),
            router: Router::new(),
            ops: Vec::new(),
        }
    }

    /// A registry that only records operations (for `lumire openapi`, no database needed).
    pub fn documenting() -> Api {
        Api {
            state: None,
            router: Router::new(),
            ops: Vec::new(),
        }
    }

    pub fn add<H, T>(&mut self, op: Op, handler: H)
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        if let Some(state) = &self.state {
            let guard = OpGuard {
                state: state.clone(),
                access: op.access,
                tag: op.tag,
                session_only: op.session_only,
            };
            let filter = method_filter(&op.method);
            // Layers run outermost-last: the guard resolves the actor, then idempotency
            // (which needs the actor's tenant and credential) wraps the handler.
            let route = on(filter, handler)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    crate::http::idempotency::middleware,
                ))
                .layer(axum::middleware::from_fn_with_state(guard, authorize));
            let router = std::mem::take(&mut self.router);
            self.router = router.route(op.path, route);
        }
        self.ops.push(op);
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<Op>) {
        (self.router, self.ops)
    }
}

fn method_filter(m: &Method) -> MethodFilter {
    match *m {
        Method::POST => MethodFilter::POST,
        Method::PATCH => MethodFilter::PATCH,
        Method::PUT => MethodFilter::PUT,
        Method::DELETE => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}
