//! TLS and mutual TLS: a client must trust the server's CA, and with mTLS
//! present a certificate of the client CA.

use std::sync::Arc;
use std::time::Duration;

use dataplane::{Control, DataplaneConfig};
use p4k8s_p4runtime::proto::p4::v1::p4_runtime_client::P4RuntimeClient;
use p4k8s_p4runtime::proto::p4::v1::CapabilitiesRequest;
use p4k8s_p4runtime::TlsConfig;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
    stranger: (String, String),
}

fn new_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
}

fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, name: &str) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .signed_by(&key, ca)
        .expect("sign");
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let ca = new_ca();
    let other = new_ca();
    Pki {
        ca_pem: ca.pem(),
        server: leaf(&ca, "localhost"),
        client: leaf(&ca, "controller"),
        stranger: leaf(&other, "controller"),
    }
}

async fn start(tls: TlsConfig) -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let control = Arc::new(Control::new(DataplaneConfig::small()));
    tokio::spawn(async move {
        p4k8s_p4runtime::serve_with_listener_tls(listener, 1, control, Some(tls), async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    (format!("https://{addr}"), stop)
}

async fn capabilities(url: &str, tls: ClientTlsConfig) -> Result<String, String> {
    let channel = Channel::from_shared(url.to_owned())
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    P4RuntimeClient::new(channel)
        .capabilities(CapabilitiesRequest { device_id: 1 })
        .await
        .map(|r| r.into_inner().p4runtime_api_version)
        .map_err(|e| format!("rpc: {e}"))
}

fn client_tls(pki: &Pki, identity: Option<&(String, String)>) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    match identity {
        Some((cert, key)) => tls.identity(Identity::from_pem(cert, key)),
        None => tls,
    }
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_server() {
    let pki = pki();
    let (url, _stop) = start(TlsConfig::new(pki.server.0.clone(), pki.server.1.clone())).await;
    assert_eq!(
        capabilities(&url, client_tls(&pki, None)).await.as_deref(),
        Ok("1.5.0")
    );
    // A client that trusts another CA refuses the server.
    let other = new_ca();
    let distrust = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(other.pem()))
        .domain_name("localhost");
    assert!(capabilities(&url, distrust).await.is_err());
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_of_the_client_ca() {
    let pki = pki();
    let tls = TlsConfig::new(pki.server.0.clone(), pki.server.1.clone())
        .with_client_ca(pki.ca_pem.clone());
    let (url, _stop) = start(tls).await;
    assert_eq!(
        capabilities(&url, client_tls(&pki, Some(&pki.client)))
            .await
            .as_deref(),
        Ok("1.5.0")
    );
    assert!(
        capabilities(&url, client_tls(&pki, None)).await.is_err(),
        "no client certificate"
    );
    assert!(
        capabilities(&url, client_tls(&pki, Some(&pki.stranger)))
            .await
            .is_err(),
        "client certificate of another CA"
    );
}
