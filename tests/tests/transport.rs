//! The TLS layer authenticates exactly the identity keys: presenting someone else's public
//! key without its private key fails the handshake, in both directions.

use std::sync::Arc;

use pocnet_crypto::Identity;
use pocnet_tests::{Poc, Relay};

fn id() -> Identity {
    Identity::generate(&mut pocnet_crypto::os_rng(), pocnet_client::now_ms() / 1000, 86400).unwrap()
}

#[test]
fn impostor_relay_presenting_the_pinned_key_without_its_secret_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (real_relay, mallory, client) = (id(), id(), id());
        // Mallory's server claims the real relay's public key but can only sign with her own.
        let tls = pocnet_wire::tls::server_config(
            &mallory.signing_seed(),
            real_relay.public_key().as_bytes(),
            Arc::new(|_: &pocnet_crypto::IdentityKey| true),
        )
        .unwrap();
        let cfg = quinn::ServerConfig::with_crypto(Arc::new(
            quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap(),
        ));
        let ep = quinn::Endpoint::server(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = ep.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            if let Some(inc) = ep.accept().await {
                let _ = inc.await;
            }
        });
        let r = pocnet_client::net::Session::connect(&client, &addr, real_relay.fingerprint()).await;
        assert!(r.is_err(), "a handshake signed by the wrong key must fail");
        let _ = server.await;
    });
}

#[test]
fn client_presenting_another_members_key_without_its_secret_is_refused() {
    let relay = Relay::start();
    let victim = Poc::enrolled(&relay, "CL", "primary");
    let v = victim.client();
    let mallory = id();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pin = pocnet_crypto::Fingerprint::parse(&relay.fingerprint).unwrap();
        let tls =
            pocnet_wire::tls::client_config(&mallory.signing_seed(), v.identity.public_key().as_bytes(), pin).unwrap();
        let mut cfg = quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
        ));
        cfg.transport_config(Arc::new(quinn::TransportConfig::default()));
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        ep.set_default_client_config(cfg);
        let addr: std::net::SocketAddr = relay.addr.parse().unwrap();
        // The client side may finish its handshake first; the relay's refusal then shows on
        // the first request.
        let refused = match ep.connect(addr, pocnet_wire::SERVER_NAME).unwrap().await {
            Err(_) => true,
            Ok(conn) => match conn.open_bi().await {
                Err(_) => true,
                Ok((mut send, mut recv)) => {
                    let _ = send
                        .write_all(&pocnet_wire::encode(&pocnet_wire::Request::Hello { protocol: 1 }))
                        .await;
                    let _ = send.finish();
                    recv.read_to_end(1 << 20).await.map(|b| b.is_empty()).unwrap_or(true)
                }
            },
        };
        assert!(
            refused,
            "the relay answered a client that cannot sign for the key it presented"
        );
        // The real owner still gets in.
        let s = v.connect().await.unwrap();
        assert_eq!(s.require_member().unwrap().handle, "CL.primary");
        s.close().await;
    });
}
