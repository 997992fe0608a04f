//! Integration tests: the real binary, the real `aws-sdk-lambda` client, and a
//! Lambda Invoke API emulator on 127.0.0.1.

#[path = "../support/emulator.rs"]
mod emulator;
#[path = "../support/server.rs"]
mod helpers;

mod abuse;
mod batch;
mod cache;
mod chemistry;
mod cli;
mod coalesce;
mod config;
mod deploy;
mod drain;
mod keys;
mod lambda;
mod lifecycle;
mod loadtest;
mod mcp;
mod openapi;
mod pages;
mod reactions;
mod structures;
mod translate;
