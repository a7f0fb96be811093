//! The floor of any user-space relay, for benches/pgbench_overhead.sh: a bare tokio TCP
//! forwarder that copies bytes both ways with `copy_bidirectional` and understands nothing.
//! Built as an example of the proxy package (`cargo build --release -p pgtrickle-proxy
//! --example bare_forwarder`).
//!
//! Usage: bare_forwarder LISTEN_ADDR UPSTREAM_ADDR (e.g. 127.0.0.1:6433 127.0.0.1:5432)

use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_forwarder LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(&listen).await?;
    loop {
        let (mut client, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}
