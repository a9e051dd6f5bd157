//! Typed routing: a table from `(method, manifest route)` to handler functions.

use crate::{Problem, Request, Response};

/// A route handler: takes the request, answers a response or a problem.
pub type Handler = fn(&Request) -> Result<Response, Problem>;

/// Maps the manifest's routes to handlers. Build it once in [`crate::Plugin::handle`]:
///
/// ```ignore
/// fn handle(req: Request) -> Result<Response, Problem> {
///     Router::new()
///         .get("/v1/things", list)
///         .post("/v1/things", create)
///         .get("/v1/things/{id}", get)
///         .dispatch(&req)
/// }
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<(&'static str, &'static str, Handler)>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Router {
        Router::default()
    }
    /// Serves `method route` (the route exactly as declared in the manifest) with `handler`.
    pub fn route(mut self, method: &'static str, route: &'static str, handler: Handler) -> Self {
        self.routes.push((method, route, handler));
        self
    }
    /// `GET route`.
    pub fn get(self, route: &'static str, handler: Handler) -> Self {
        self.route("GET", route, handler)
    }
    /// `POST route`.
    pub fn post(self, route: &'static str, handler: Handler) -> Self {
        self.route("POST", route, handler)
    }
    /// `PATCH route`.
    pub fn patch(self, route: &'static str, handler: Handler) -> Self {
        self.route("PATCH", route, handler)
    }
    /// `PUT route`.
    pub fn put(self, route: &'static str, handler: Handler) -> Self {
        self.route("PUT", route, handler)
    }
    /// `DELETE route`.
    pub fn delete(self, route: &'static str, handler: Handler) -> Self {
        self.route("DELETE", route, handler)
    }
    /// Calls the handler of the request's method and matched route; a 404 problem when none
    /// serves it (a route declared in the manifest but missing here).
    pub fn dispatch(&self, req: &Request) -> Result<Response, Problem> {
        self.routes
            .iter()
            .find(|(m, r, _)| *m == req.method() && *r == req.route())
            .map(|(_, _, h)| h(req))
            .unwrap_or_else(|| Err(Problem::not_found("route")))
    }
}
