//! One declaration per route: the path and methods axum serves come from the handler's own
//! `#[utoipa::path]`, so no route is served under a path or method the OpenAPI document does
//! not state. `utoipa-axum`'s `routes!` does this too, but no release of it matches the
//! utoipa in use (6); `every_route_is_documented_and_every_documented_route_served` closes the
//! rest (a handler routed but left out of the document's list, or the reverse).

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, on};
use utoipa::openapi::path::HttpMethod;

use crate::state::AppState;

/// Routes being declared, and what was declared (path, methods), for the test.
pub(crate) struct Routes {
    router: Router<AppState>,
    /// Served under this prefix (`/v1`), which the documented paths include.
    prefix: &'static str,
    declared: Vec<(String, Vec<HttpMethod>)>,
}

impl Routes {
    pub fn new(prefix: &'static str) -> Self {
        Self {
            router: Router::new(),
            prefix,
            declared: Vec::new(),
        }
    }

    /// Serves `handler` where its `#[utoipa::path]` (`P`, the `__path_*` type the attribute
    /// makes) says.
    pub fn add<P, H, T>(mut self, handler: H) -> Self
    where
        P: utoipa::Path,
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = P::path();
        let methods = P::methods();
        let local = path.strip_prefix(self.prefix).unwrap_or(&path).to_owned();
        if let Some(filter) = methods.iter().map(filter_of).reduce(MethodFilter::or) {
            self.router = self.router.route(&local, on(filter, handler));
        }
        // What is served, prefix included: a documented path outside the prefix would be
        // served elsewhere than documented, and the test below would see it.
        self.declared
            .push((format!("{}{local}", self.prefix), methods));
        self
    }

    /// Both sets of routes together.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.declared.extend(other.declared);
        self
    }

    pub fn router(self) -> Router<AppState> {
        self.router
    }

    /// What is served: (path, methods).
    #[cfg(test)]
    pub fn declared(&self) -> &[(String, Vec<HttpMethod>)] {
        &self.declared
    }
}

fn filter_of(m: &HttpMethod) -> MethodFilter {
    match m {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn name_of(m: &HttpMethod) -> &'static str {
        match m {
            HttpMethod::Get => "Get",
            HttpMethod::Post => "Post",
            HttpMethod::Put => "Put",
            HttpMethod::Delete => "Delete",
            HttpMethod::Patch => "Patch",
            HttpMethod::Options => "Options",
            HttpMethod::Head => "Head",
            HttpMethod::Trace => "Trace",
        }
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_served() {
        let routes = crate::server::v1_routes().merge(crate::ops::routes(true));
        let served: BTreeSet<(String, String)> = routes
            .declared()
            .iter()
            .flat_map(|(p, ms)| ms.iter().map(move |m| (p.clone(), name_of(m).to_owned())))
            .collect();
        let doc = crate::openapi::openapi();
        let documented: BTreeSet<(String, String)> = doc
            .paths
            .paths
            .iter()
            .flat_map(|(p, item)| {
                [
                    (item.get.is_some(), "Get"),
                    (item.post.is_some(), "Post"),
                    (item.put.is_some(), "Put"),
                    (item.delete.is_some(), "Delete"),
                    (item.patch.is_some(), "Patch"),
                ]
                .into_iter()
                .filter(|(has, _)| *has)
                .map(move |(_, m)| (p.clone(), m.to_owned()))
            })
            .collect();
        assert_eq!(served, documented);
    }
}
