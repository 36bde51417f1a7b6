//! Optional TLS and mutual TLS for the P4Runtime server (rustls with the
//! ring provider, through tonic).

use std::path::Path;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// The server's TLS settings: its certificate chain and key, and, for
/// mutual TLS, the CA that client certificates must chain to.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert_pem: Vec<u8>,
    /// PEM private key of the server.
    pub key_pem: Vec<u8>,
    /// PEM CA certificates; when set, clients must present a certificate
    /// signed by one of them (mTLS).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl TlsConfig {
    /// Server-authenticated TLS with this certificate chain and key.
    pub fn new(cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        TlsConfig {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            client_ca_pem: None,
        }
    }

    /// Also requires client certificates signed by `ca_pem` (mutual TLS).
    pub fn with_client_ca(mut self, ca_pem: impl Into<Vec<u8>>) -> Self {
        self.client_ca_pem = Some(ca_pem.into());
        self
    }

    /// Reads the PEM files: certificate chain, key and optional client CA.
    pub fn from_files(cert: &Path, key: &Path, client_ca: Option<&Path>) -> std::io::Result<Self> {
        let mut tls = TlsConfig::new(std::fs::read(cert)?, std::fs::read(key)?);
        if let Some(ca) = client_ca {
            tls = tls.with_client_ca(std::fs::read(ca)?);
        }
        Ok(tls)
    }

    /// The tonic server configuration.
    pub fn server_config(&self) -> ServerTlsConfig {
        let config =
            ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        match &self.client_ca_pem {
            Some(ca) => config.client_ca_root(Certificate::from_pem(ca)),
            None => config,
        }
    }
}
