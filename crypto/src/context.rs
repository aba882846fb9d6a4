//! Domain separation for every signature and derivation.
//!
//! Each signed object kind has its own context string, prefixed to the signed
//! message, so no signature can be replayed as another kind. Contexts start with
//! `pocnet/`, never with the 64 spaces TLS 1.3 prefixes to CertificateVerify input,
//! so the identity key may also authenticate TLS handshakes.

/// A signing context: `pocnet/v<N>/<kind>` followed by a zero byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningContext(&'static [u8]);

impl SigningContext {
    /// Defines a context. Panics at compile time (in const use) unless it starts with
    /// `pocnet/` and ends with a zero byte.
    pub const fn new(ctx: &'static [u8]) -> Self {
        assert!(ctx.len() > 8 && ctx[0] == b'p' && ctx[6] == b'/' && ctx[ctx.len() - 1] == 0);
        SigningContext(ctx)
    }
    /// The context bytes, including the terminating zero.
    pub fn as_bytes(&self) -> &'static [u8] {
        self.0
    }
    pub(crate) fn message(&self, parts: &[&[u8]]) -> Vec<u8> {
        let len = self.0.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut m = Vec::with_capacity(len);
        m.extend_from_slice(self.0);
        for p in parts {
            m.extend_from_slice(p);
        }
        m
    }
}

/// Signature on an encryption key record.
pub const ENC_KEY: SigningContext = SigningContext::new(b"pocnet/v1/enc-key\0");
/// Signature on an envelope.
pub const ENVELOPE: SigningContext = SigningContext::new(b"pocnet/v1/envelope\0");
/// Signature on a receipt.
pub const RECEIPT: SigningContext = SigningContext::new(b"pocnet/v1/receipt\0");
/// Signature on a directory log statement.
pub const DIRECTORY: SigningContext = SigningContext::new(b"pocnet/v1/directory\0");

/// The POC's signature on its answer to a contact-verification round.
pub const ROUND_ANSWER: SigningContext = SigningContext::new(b"pocnet/v1/round-answer\0");
/// The Secretariat's signature on an outcome recorded outside pocnet (phone, e-mail).
pub const ROUND_OUTCOME: SigningContext = SigningContext::new(b"pocnet/v1/round-outcome\0");
/// The Secretariat's signature on a round's manifest (targets and what each answered).
pub const ROUND_MANIFEST: SigningContext = SigningContext::new(b"pocnet/v1/round-manifest\0");
/// The sender's signature on an escalation alert's plan (states, ranks, release window).
pub const ALERT_PLAN: SigningContext = SigningContext::new(b"pocnet/v1/alert-plan\0");
/// The drill controller's (the Secretariat's) signature on a drill record (PROTOCOL.md §15).
pub const DRILL_BUNDLE: SigningContext = SigningContext::new(b"pocnet/v1/drill-bundle\0");

/// HPKE `info` prefix for key stanzas.
pub(crate) const STANZA_INFO: &[u8] = b"pocnet/v1/stanza\0";
/// HKDF `info` for the payload key.
pub(crate) const PAYLOAD_INFO: &[u8] = b"pocnet/v1/payload\0";
/// Fingerprint hash prefix.
pub(crate) const FINGERPRINT: &[u8] = b"pocnet/v1/fingerprint\0";
/// Safety number hash prefix.
pub(crate) const SAFETY: &[u8] = b"pocnet/v1/safety-number\0";
/// Voice code hash prefix.
pub(crate) const VOICE_CODE: &[u8] = b"pocnet/v1/voice-code\0";
