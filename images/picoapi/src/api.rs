//! The application: picoserve's router and handlers, and the accept loop.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use net::{Config, PassAll, TcpListener, TcpOptions};
use picoserve::extract::Json;
use picoserve::response::StatusCode;
use picoserve::routing::{get, parse_path_segment};
use serde::{Deserialize, Serialize};
use unikernel::{println, task};

use crate::glue::{Socket, Timer};

/// Connections served at once (one task each).
const WORKERS: usize = 8;

#[derive(Clone, Deserialize, Serialize)]
struct NewItem {
    name: String,
    qty: u32,
}

#[derive(Serialize)]
struct Item {
    id: u32,
    name: String,
    qty: u32,
}

#[derive(Serialize)]
struct Index {
    service: &'static str,
    items: usize,
}

#[derive(Serialize)]
struct Sum {
    sum: i64,
}

#[derive(Serialize)]
struct Problem {
    error: &'static str,
}

static ITEMS: spin::Mutex<Vec<NewItem>> = spin::Mutex::new(Vec::new());

fn item(id: u32) -> Option<Item> {
    let items = ITEMS.lock();
    let stored = items.get(usize::try_from(id).ok()?.checked_sub(1)?)?;
    Some(Item {
        id,
        name: stored.name.clone(),
        qty: stored.qty,
    })
}

fn router() -> picoserve::Router<impl picoserve::routing::PathRouter> {
    picoserve::Router::new()
        .route(
            "/",
            get(async || {
                Json(Index {
                    service: "picoapi",
                    items: ITEMS.lock().len(),
                })
            }),
        )
        .route(
            ("/items", parse_path_segment::<u32>()),
            get(async |id: u32| match item(id) {
                Some(found) => Ok(Json(found)),
                None => Err(Json(Problem {
                    error: "no such item",
                })
                .into_response()
                .with_status_code(StatusCode::NOT_FOUND)),
            }),
        )
        .route(
            "/items",
            get(async || (StatusCode::METHOD_NOT_ALLOWED, "use POST\n")).post(
                async |Json(new): Json<NewItem>| {
                    let mut items = ITEMS.lock();
                    items.push(new.clone());
                    let id = items.len() as u32;
                    Json(Item {
                        id,
                        name: new.name,
                        qty: new.qty,
                    })
                    .into_response()
                    .with_status_code(StatusCode::CREATED)
                },
            ),
        )
        .route(
            (
                "/sum",
                parse_path_segment::<i64>(),
                parse_path_segment::<i64>(),
            ),
            get(async |(a, b): (i64, i64)| {
                Json(Sum {
                    sum: a.saturating_add(b),
                })
            }),
        )
}

fn port(cmdline: &str) -> Option<u16> {
    match cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("port="))
    {
        None => Some(80),
        Some(text) => text.parse().ok().filter(|&p| p != 0),
    }
}

pub async fn run() -> i32 {
    let cmdline = unikernel::cmdline();
    let config = match Config::from_cmdline(cmdline) {
        Ok(config) => config,
        Err(e) => {
            println!("picoapi: {e}");
            return 2;
        }
    };
    let Some(port) = port(cmdline) else {
        println!("picoapi: bad port= value");
        return 2;
    };
    let stack = match net::open::<PassAll>(config) {
        Ok(stack) => stack,
        Err(e) => {
            println!("picoapi: no network device: {e:?}");
            return 3;
        }
    };
    let address = stack.wait_for_address().await;
    let options = TcpOptions {
        backlog: WORKERS,
        ..TcpOptions::default()
    };
    let listener = match TcpListener::bind(&stack, port, options) {
        Ok(listener) => Rc::new(listener),
        Err(e) => {
            println!("picoapi: cannot listen on port {port}: {e:?}");
            return 3;
        }
    };
    let app = Rc::new(router());
    let config = Rc::new(picoserve::Config::const_default().keep_connection_alive());
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| task::spawn(worker(listener.clone(), app.clone(), config.clone())))
        .collect();
    println!("picoapi: serving on {address}:{port}");
    for worker in workers {
        worker.await;
    }
    0
}

async fn worker<P: picoserve::routing::PathRouter>(
    listener: Rc<TcpListener>,
    app: Rc<picoserve::Router<P>>,
    config: Rc<picoserve::Config>,
) {
    let mut buffer = alloc::vec![0u8; 2048];
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!(target: "picoapi", "accept: {e:?}");
                continue;
            }
        };
        let server = picoserve::Server::custom(&app, Timer, &config, &mut buffer);
        if let Err(e) = server.serve(Socket(stream)).await {
            log::debug!(target: "picoapi", "connection ended: {e}");
        }
    }
}
