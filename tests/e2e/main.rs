//! End-to-end tests of Aiguillage against the machine's real PostgreSQL and RabbitMQ.
//! Each test has its own database and broker namespace, so tests run in parallel and
//! never disturb a running demo.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod answer_links;
mod appointments;
mod assets;
mod closing_the_loop;
mod crash;
mod faults;
mod foundation;
mod importing;
mod link_pages;
mod matching;
mod notifications;
mod pages;
mod privacy;
mod signin;
mod simulation;
mod split;
mod support;
mod tokens;
mod typed;
