//! TLS 1.3 with raw Ed25519 public keys (RFC 7250) on both sides.
//!
//! Each side presents exactly its identity key as a SubjectPublicKeyInfo; each side
//! verifies the handshake signature itself with `ed25519-dalek`'s `verify_strict`.
//! The client pins the relay's key fingerprint; the relay asks a callback whether a
//! client key may connect at all (revoked keys are refused at the handshake).

use std::sync::Arc;

use ed25519_dalek::{Signature, VerifyingKey};
use pocnet_crypto::{Fingerprint, IdentityKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::AlwaysResolvesClientRawPublicKeys;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::AlwaysResolvesServerRawPublicKeys;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, PeerIncompatible, SignatureScheme};

const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The 44-byte SubjectPublicKeyInfo for an Ed25519 key.
pub fn spki(key: &[u8; 32]) -> Vec<u8> {
    [&SPKI_PREFIX[..], key].concat()
}

/// The Ed25519 key inside a SubjectPublicKeyInfo, if it is exactly one.
pub fn key_from_spki(der: &[u8]) -> Option<[u8; 32]> {
    if der.len() == 44 && der[..12] == SPKI_PREFIX {
        der[12..].try_into().ok()
    } else {
        None
    }
}

fn certified_key(seed: &[u8; 32], public: &[u8; 32]) -> Result<Arc<CertifiedKey>, Error> {
    let pkcs8 = zeroize::Zeroizing::new([&PKCS8_PREFIX[..], seed].concat());
    // Borrow the zeroizing buffer: an owned copy of the seed would outlive it unwiped.
    let der = PrivatePkcs8KeyDer::from(&pkcs8[..]);
    let signer = rustls::crypto::ring::sign::any_eddsa_type(&der)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(spki(public))],
        signer,
    )))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn peer_key(cert: &CertificateDer<'_>) -> Result<IdentityKey, Error> {
    let raw = key_from_spki(cert.as_ref()).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    IdentityKey::from_bytes(&raw).map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))
}

fn verify_ed25519(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(Error::PeerIncompatible(PeerIncompatible::NoSignatureSchemesInCommon));
    }
    let raw = key_from_spki(cert.as_ref()).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let key = VerifyingKey::from_bytes(&raw).map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let sig: [u8; 64] = dss
        .signature()
        .try_into()
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))?;
    key.verify_strict(message, &Signature::from_bytes(&sig))
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))?;
    Ok(HandshakeSignatureValid::assertion())
}

/// Client side: accept only the relay whose identity-key fingerprint is pinned.
#[derive(Debug)]
struct PinnedRelay(Fingerprint);

impl ServerCertVerifier for PinnedRelay {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if peer_key(end_entity)?.fingerprint() == self.0 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::PeerIncompatible(PeerIncompatible::Tls13RequiredForQuic))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_ed25519(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// Decides at the handshake whether a client key may connect at all.
pub type AdmitFn = dyn Fn(&IdentityKey) -> bool + Send + Sync;

struct AdmitClients(Arc<AdmitFn>);

impl std::fmt::Debug for AdmitClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmitClients")
    }
}

impl ClientCertVerifier for AdmitClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let key = peer_key(end_entity)?;
        if (self.0)(&key) {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::Revoked))
        }
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::PeerIncompatible(PeerIncompatible::Tls13RequiredForQuic))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_ed25519(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// The relay's TLS configuration: its own raw key, mandatory client keys, TLS 1.3 only.
pub fn server_config(seed: &[u8; 32], public: &[u8; 32], admit: Arc<AdmitFn>) -> Result<rustls::ServerConfig, Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(AdmitClients(admit)))
        .with_cert_resolver(Arc::new(AlwaysResolvesServerRawPublicKeys::new(certified_key(
            seed, public,
        )?)));
    cfg.alpn_protocols = vec![crate::ALPN.to_vec()];
    Ok(cfg)
}

/// A client's TLS configuration: its own raw key, the relay pinned by fingerprint.
pub fn client_config(seed: &[u8; 32], public: &[u8; 32], relay: Fingerprint) -> Result<rustls::ClientConfig, Error> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedRelay(relay)))
        .with_client_cert_resolver(Arc::new(AlwaysResolvesClientRawPublicKeys::new(certified_key(
            seed, public,
        )?)));
    cfg.alpn_protocols = vec![crate::ALPN.to_vec()];
    Ok(cfg)
}

/// The client's identity key from an established connection's TLS peer identity.
pub fn peer_identity(certs: &[CertificateDer<'static>]) -> Option<IdentityKey> {
    certs.first().and_then(|c| peer_key(c).ok())
}
