//! `/mcp`: the service as a Model Context Protocol tool server (Streamable
//! HTTP), for LLM agents: `predict_products`, `canonicalize` and
//! `draw_molecule`, each a door onto the same core as the JSON API, behind
//! the same keys, quotas and limits (`auth` runs before it; a prediction
//! charges one input to the caller's key). Off with `MCP_ENABLED=false`.
//!
//! Stateless: no session is kept (any pod answers any call, as behind the
//! balancer), and answers are plain JSON. Requests from a browser page
//! (those with an `Origin` header) are refused: the tools are for programs.

use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use base64::Engine;
use rmcp::handler::server::common::{Extension, schema_for_type};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::KeyInUse;
use super::depict::DEFAULT_SIZE;
use crate::config::InputFormat;
use crate::translate::{Caller, TranslateInput};

/// The tools, over the application's state; one per call (stateless).
#[derive(Clone)]
pub struct Tools {
    state: Arc<AppState>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PredictInput {
    /// All reactants and reagents as SMILES, separated by '.', e.g.
    /// "CC(=O)O.OCC" (any valid spelling: it is canonicalized first).
    pub reactants: String,
    /// Beam width: how many candidates the model keeps while searching
    /// (default 5; at most the server's MAX_BEAM).
    pub beam: Option<u32>,
    /// How many ranked products to return (default 5, at most the beam).
    pub n_best: Option<u32>,
    /// A product you expect, as SMILES: the answer says at which rank the
    /// model found it (compared as molecules, not as text).
    pub expected_product: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PredictOutput {
    /// The reactants as the model read them (RDKit's canonical SMILES).
    pub reactants_canonical: Option<String>,
    /// The products, best first.
    pub products: Vec<Product>,
    /// The rank (from 1) of the first product that is `expected_product`;
    /// null when it is not among them or none was given.
    pub correct_rank: Option<usize>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Product {
    /// 1 for the most probable.
    pub rank: usize,
    /// The product as canonical SMILES; null when the model's text is not a
    /// valid molecule.
    pub smiles: Option<String>,
    /// The model's output as written.
    pub text: String,
    /// The model's probability for this product, from 0 to 1.
    pub probability: f64,
    /// Whether the text is a valid molecule.
    pub valid: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SmilesInput {
    /// A molecule or a mixture as SMILES (parts separated by '.').
    pub smiles: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CanonicalOutput {
    /// RDKit's canonical SMILES of the input (stereochemistry removed, as
    /// the model reads it).
    pub canonical: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DrawInput {
    /// A molecule or a mixture as SMILES.
    pub smiles: String,
    /// Width in pixels (50 to 1200, default 300).
    pub width: Option<u32>,
    /// Height in pixels (50 to 1200, default 220).
    pub height: Option<u32>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DrawOutput {
    /// The canonical SMILES that was drawn.
    pub canonical: String,
    /// The image's type (the image itself is the call's image content).
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
}

/// The caller as the core knows callers, from the HTTP request the call came in.
fn caller(parts: &Parts) -> Caller {
    parts.extensions.get::<super::error::RequestCaller>().map(|c| c.0.clone()).unwrap_or_default()
}

/// A sentence for a model to act on: the core's words, capitalized.
fn words(e: impl Into<super::error::ApiError>) -> String {
    super::error::sentence(&e.into().message)
}

#[tool_router]
impl Tools {
    pub fn new(state: Arc<AppState>) -> Self {
        Tools { state, tool_router: Self::tool_router() }
    }

    #[tool(description = "Predict the products of a chemical reaction from its reactants and reagents (SMILES), \
        with the reaction-prediction model this server fronts. Returns the most probable products, best first, \
        as canonical SMILES with probabilities; give expected_product to learn at which rank the model finds it.")]
    async fn predict_products(
        &self,
        Parameters(input): Parameters<PredictInput>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<PredictOutput>, String> {
        let state = &self.state;
        if let (Some(KeyInUse(key)), Some(access)) = (parts.extensions.get::<KeyInUse>(), state.access.as_ref()) {
            access.charge(key, 1, &state.metrics).map_err(words)?;
        }
        let asked = TranslateInput {
            text: input.reactants,
            beam: input.beam,
            n_best: input.n_best,
            attention: Some(false),
            target: input.expected_product,
            ..Default::default()
        };
        let (view, _) = state.service.predict(asked, &caller(&parts)).await.map_err(words)?;
        let smiles = state.service.reading.format == InputFormat::Smiles;
        let products = view
            .predictions
            .into_iter()
            .map(|p| {
                let canonical = p.canonical.flatten();
                Product {
                    rank: p.rank,
                    valid: !smiles || canonical.is_some(),
                    smiles: canonical,
                    text: p.text,
                    probability: p.probability,
                }
            })
            .collect();
        Ok(Json(PredictOutput {
            reactants_canonical: view.canonical,
            products,
            correct_rank: view.target.and_then(|t| t.correct_rank),
        }))
    }

    #[tool(description = "Check a SMILES string and return RDKit's canonical form (the one spelling of the molecule \
        that this server and its model use). An invalid SMILES is an error that says what is wrong.")]
    async fn canonicalize(
        &self,
        Parameters(input): Parameters<SmilesInput>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<CanonicalOutput>, String> {
        let canonical = self.state.service.canonical(&input.smiles, &caller(&parts)).await.map_err(words)?;
        Ok(Json(CanonicalOutput { canonical }))
    }

    #[tool(
        description = "Draw a molecule or mixture given as SMILES: returns an SVG image of its structure (and its \
        canonical SMILES).",
        output_schema = schema_for_type::<DrawOutput>()
    )]
    async fn draw_molecule(
        &self,
        Parameters(input): Parameters<DrawInput>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, String> {
        let state = &self.state;
        let (width, height) = (input.width.unwrap_or(DEFAULT_SIZE.0), input.height.unwrap_or(DEFAULT_SIZE.1));
        let caller = caller(&parts);
        let svg =
            super::depict::draw(state, caller.client, input.smiles.clone(), width, height).await.map_err(words)?;
        // On the chemistry threads, as every RDKit call: the drawing read the
        // molecule but does not remember its canonical form.
        let canonical = state.service.canonical(&input.smiles, &caller).await.unwrap_or(input.smiles);
        let info = DrawOutput { canonical, mime_type: "image/svg+xml".into(), width, height };
        let data = base64::engine::general_purpose::STANDARD.encode(svg.as_bytes());
        let mut result = CallToolResult::success(vec![ContentBlock::image(data, "image/svg+xml")]);
        result.structured_content = Some(serde_json::to_value(info).map_err(|e| e.to_string())?);
        Ok(result)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Reaction prediction: give reactants and reagents as SMILES to predict_products; canonicalize checks \
             a SMILES; draw_molecule draws one.",
            )
    }
}

/// The tool server as a service for the router at `/mcp`.
pub fn service(state: Arc<AppState>) -> StreamableHttpService<Tools, NeverSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_max_request_body_bytes(state.config.max_body_bytes)
        // Any host name (the balancer's, the cluster's); a browser page
        // (a request with an Origin) is refused instead.
        .disable_allowed_hosts()
        .enforce_origin_validation();
    StreamableHttpService::new(move || Ok(Tools::new(state.clone())), Arc::new(NeverSessionManager::default()), config)
}
