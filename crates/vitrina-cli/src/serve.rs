//! `vitrina serve`: the embedded service with graceful shutdown.

use std::path::PathBuf;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use vitrina_server::embedded::{Embedded, EmbeddedConfig};

use crate::config::Config;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "VITRINA_ADDR")]
    addr: Option<String>,
    /// Data directory of the embedded store.
    #[arg(long, env = "VITRINA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The store: a data directory, or a PostgreSQL database (`postgres://user@host:5432/db`).
    /// Wins over `--data-dir`.
    #[arg(long, env = "VITRINA_STORE")]
    store: Option<String>,
    /// Do not load the demo shop into a new data directory.
    #[arg(long)]
    no_demo: bool,
    /// The roles this process plays, comma-separated: `activity` (tracking, catalogue and
    /// user writes), `api` (lists and reads), `training` (jobs, registry, experiment changes).
    /// Default: all three. Fewer need `--store postgres://…` shared with the other processes.
    #[arg(long, env = "VITRINA_ROLE")]
    role: Option<String>,
    /// NATS JetStream between the processes of a deployment (`nats://host:4222`).
    #[arg(long, env = "VITRINA_BUS")]
    bus: Option<String>,
    /// Redis between the processes of a deployment (`redis://host:6379`).
    #[arg(long, env = "VITRINA_CACHE")]
    cache: Option<String>,
    /// Serve on a non-loopback address although no API key exists (anyone who reaches the
    /// port may then do anything).
    #[arg(long)]
    insecure_no_auth: bool,
}

pub fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if config.log.format == "pretty" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(true).try_init()
    };
}

/// Transparent huge pages off for the server's process, unless `MIMALLOC_ALLOW_THP` is set
/// (then mimalloc's own option decides). mimalloc asks for them (`MADV_HUGEPAGE`) on its
/// regions, where the kernel then backs 2 MiB ranges the heap uses only in part with whole huge
/// pages; with them the soak's RSS was 100–155 MiB higher at the same points of the run
/// (docs/BENCHMARKS.md, "Soak", "Transparent huge pages off").
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
            tracing::warn!(error = %e, "could not turn transparent huge pages off; RSS may creep up");
        }
    }
}

pub async fn run(mut config: Config, args: Args) -> anyhow::Result<()> {
    if let Some(addr) = args.addr {
        config.server.addr = addr;
    }
    config.storage.override_with(args.store.as_deref(), args.data_dir.as_deref());
    if args.no_demo {
        config.storage.demo = false;
    }
    if let Some(role) = args.role {
        config.server.roles = role;
    }
    if let Some(bus) = args.bus {
        config.bus.url = bus;
    }
    if let Some(cache) = args.cache {
        config.cache.url = cache;
    }
    let roles = vitrina_core::roles::Roles::parse(&config.server.roles)
        .map_err(|e| anyhow::anyhow!("--role / [server] roles: {e}"))?;
    let given = |url: &str| (!url.trim().is_empty()).then(|| url.trim().to_string());
    init_logging(&config);
    no_transparent_huge_pages();
    vitrina_server::observe::prometheus();

    // The certificate is read before anything else, so a bad one fails fast.
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => {
            Some(axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await.with_context(
                || format!("reading the TLS certificate {} and key {}", cert.display(), key.display()),
            )?)
        }
        (None, None) => None,
        _ => anyhow::bail!("[server] tls_cert and tls_key go together: give both or neither"),
    };
    // Bind first: a busy port fails before anything is written to the data directory.
    let listener = tokio::net::TcpListener::bind(&config.server.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.addr))?;
    let addr = listener.local_addr()?;
    let location = config.storage.location();
    let open = config.storage.open_options();
    let embedded = Embedded::start(EmbeddedConfig {
        store: location.clone(),
        pool_size: open.pool_size,
        store_timeout: open.timeout,
        demo: config.storage.demo,
        cache_users: config.cache.users,
        impression_retention_days: config.storage.impression_retention_days,
        event_retention_days: config.storage.event_retention_days,
        cache_ttl: std::time::Duration::from_secs(config.cache.ttl_seconds),
        limits: config.limits.clone(),
        ranking: config.ranking.clone(),
        schedule: config.training.clone(),
        experiment_step_seconds: config.experiments.step_seconds,
        auth: vitrina_server::auth::AuthConfig {
            open_to_any_host: args.insecure_no_auth,
            ..config.auth.clone()
        },
        rate_limits: config.rate_limits.clone(),
        checkpoint_every: (config.storage.checkpoint_interval_seconds > 0)
            .then(|| std::time::Duration::from_secs(config.storage.checkpoint_interval_seconds)),
        serve: true,
        roles,
        bus_url: given(&config.bus.url),
        cache_url: given(&config.cache.url),
        gorse: config.gorse.clone(),
    })
    .await?;
    if !addr.ip().is_loopback() && !embedded.state.auth.keys.enforced() {
        if !args.insecure_no_auth {
            embedded.shutdown().await?;
            anyhow::bail!(
                "refusing to serve on {addr} without API keys: anyone who reaches it could change or delete data. \
                 Create a key first (vitrina keys create --store {} --scope admin), \
                 listen on 127.0.0.1, or pass --insecure-no-auth",
                location.describe()
            );
        }
        tracing::warn!(addr = %addr, "serving without API keys on a non-loopback address (--insecure-no-auth)");
    }
    let app = vitrina_server::app(embedded.state.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    match tls {
        None => {
            announce("http", addr, &config);
            axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
        }
        Some(tls) => {
            announce("https", addr, &config);
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, tls)?.handle(handle).serve(app).await?;
        }
    }
    tracing::info!("no more requests; shutting down");
    embedded.shutdown().await
}

fn announce(scheme: &str, addr: std::net::SocketAddr, config: &Config) {
    tracing::info!(addr = %addr, scheme, store = %config.storage.location().describe(), roles = %config.server.roles, "vitrina listening");
    println!("vitrina listening on {scheme}://{addr}");
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
