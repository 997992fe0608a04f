//! `/mcp` at the HTTP level (the official Python SDK checks the tools
//! themselves: tests/mcp/client.py, run by .ci/run): on by default, off by a
//! setting, stateless, and closed to browser pages.

use serde_json::json;

use crate::helpers::server;

fn initialize() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}})
}

#[tokio::test]
async fn an_agent_can_initialize_without_a_session_and_a_browser_page_cannot_call_it() {
    let s = server().spawn();
    let post =
        || s.client.post(s.url("/mcp")).header("accept", "application/json, text/event-stream").json(&initialize());
    let r = s.send(post()).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["result"]["serverInfo"]["name"], "translation-front", "{}", r.json);
    assert!(r.json["result"]["capabilities"]["tools"].is_object(), "{}", r.json);
    assert!(!r.headers.contains_key("mcp-session-id"), "stateless: any pod answers any call");
    let r = s.send(post().header("origin", "https://evil.example")).await;
    assert_eq!(r.status, 403, "a page elsewhere cannot drive the tools: {}", r.json);
}

#[tokio::test]
async fn mcp_enabled_false_takes_the_route_away() {
    let s = server().env("MCP_ENABLED", "false").spawn();
    let r = s.send(s.client.post(s.url("/mcp")).json(&initialize())).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
}
