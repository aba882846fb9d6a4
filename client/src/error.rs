//! One error type for the client library. Callers match on the variant, never on text:
//! `main.rs` maps each to an exit code and a message.

use std::path::PathBuf;

use pocnet_crypto::Fingerprint;
use pocnet_wire::ErrorCode;

/// What went wrong in the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The relay answered a request with an error.
    #[error("relay refused: {message} ({code:?})")]
    Relay {
        /// What kind of refusal.
        code: ErrorCode,
        /// The relay's explanation (text from another party: neutralise before showing).
        message: String,
    },
    /// The relay answered with something the protocol does not allow here.
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
    /// This profile has no relay pinned yet.
    #[error(
        "this profile is not enrolled yet: run `pocnet enrol --relay HOST:PORT --relay-key FINGERPRINT --directory VKEY` \
         with the values the Secretariat gave you"
    )]
    NotEnrolledHere,
    /// The directory does not list this key (yet).
    #[error(
        "this key is not in the directory yet: your national authority nominates you, the Secretariat phones you \
         to hear your voice code (`pocnet whoami`), then `pocnet enrol` again"
    )]
    NotEnrolled,
    /// Two signed views of the directory that cannot both be true.
    #[error(
        "DIRECTORY FORK DETECTED ({how}). Someone is showing different directories to different POCs. The evidence \
         is kept (`pocnet directory forks`); tell the Secretariat and your national authority by phone now"
    )]
    DirectoryFork {
        /// How it was found.
        how: String,
    },
    /// Listed by the directory, but blocked at this relay by its operator.
    #[error(
        "{handles}: in the directory, but blocked at this relay by its operator, so a message cannot reach \
         them through it. Phone them, and ask the relay operator why"
    )]
    BlockedAtRelay {
        /// Who.
        handles: String,
    },
    /// The relay answered something the verified directory contradicts.
    #[error("the relay's answer contradicts the verified directory: {0}. Nothing was used from it; report this relay")]
    RelayLied(String),
    /// A directory statement or action was refused (rules, voice check).
    #[error("{0}")]
    DirectoryRefused(String),
    /// Forwarding refused by the message's TLP 2.0 marking (the text explains the rule).
    #[error("{0}")]
    TlpRefused(String),
    /// The relay refused this key as revoked.
    #[error("the relay refused this key at the handshake: it has been revoked; contact the Secretariat")]
    Revoked,
    /// The relay did not prove it holds the pinned key.
    #[error(
        "the relay's key does not match the pinned fingerprint (or it could not prove it holds that key): you may be \
         talking to the wrong relay (or the relay's key changed); check the fingerprint with the relay operator"
    )]
    WrongRelayKey,
    /// The relay's signed acceptance of a message does not verify under its pinned key.
    #[error("the relay's signed acceptance does not verify; report this relay")]
    BadRelaySignature,
    /// No answer from the relay.
    #[error("no answer from the relay: is it running and reachable? ({0})")]
    RelayUnreachable(String),
    /// The QUIC connection failed for another reason.
    #[error("connection to the relay failed: {0}")]
    Connection(#[source] quinn::ConnectionError),
    /// A transfer stopped before it was complete; running the command again resumes it.
    #[error("{0}; run the command again")]
    Incomplete(String),

    /// The key now behind a handle is not the one pinned for it: sending is blocked.
    #[error(
        "{handle}'s key changed{} (was {}, now {}). Sending is blocked: compare safety numbers by phone \
         (`pocnet verify {handle}` shows yours), then run `pocnet verify {handle} --accept <number>`",
        since.as_deref().map(|s| format!(" on {s}")).unwrap_or_default(), was.short(), now.short()
    )]
    ContactChanged {
        /// When and where the log changed it ("2026-11-30 (log entry 418)"), if known.
        since: Option<String>,
        /// The handle.
        handle: String,
        /// The pinned key.
        was: Fingerprint,
        /// The key the directory now has.
        now: Fingerprint,
    },
    /// No enrolled POC matches.
    #[error(
        "no enrolled POC matches {query:?}; handles look like CL.primary, or use a state code or a fingerprint prefix"
    )]
    UnknownContact {
        /// What was asked for.
        query: String,
    },
    /// Several POCs match where one is needed.
    #[error("{query:?} matches {count} POCs; name one handle")]
    AmbiguousContact {
        /// What was asked for.
        query: String,
        /// How many matched.
        count: usize,
    },
    /// Every recipient was ourselves.
    #[error("no recipients left (you cannot send only to yourself)")]
    NoRecipients,
    /// A message id that is not hexadecimal.
    #[error("message ids are hexadecimal (as `pocnet inbox` shows them); got {0:?}")]
    BadMessageId(String),
    /// No stored message has this id.
    #[error("no message with id {0}; list them with `pocnet inbox`")]
    UnknownMessage(String),
    /// Several stored messages start with this prefix.
    #[error("{count} messages start with {prefix}; give more digits")]
    AmbiguousMessage {
        /// The prefix given.
        prefix: String,
        /// How many matched.
        count: usize,
    },
    /// `status` of a message we received.
    #[error("{0} is a message you received; status is for messages you sent")]
    NotSentByYou(String),
    /// An argument the user gave is not usable.
    #[error("{0}")]
    Usage(String),

    /// The passphrase does not open the key file.
    #[error("wrong passphrase for {}", .0.display())]
    WrongPassphrase(PathBuf),
    /// The key file does not decode or its checksum fails.
    #[error("cannot unlock {}: {source}", path.display())]
    DamagedKeyFile {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: pocnet_crypto::Error,
    },
    /// No profile in the directory.
    #[error("no pocnet profile in {}: run `pocnet init` (or pass --home / set POCNET_HOME)", .0.display())]
    NoProfile(PathBuf),
    /// `init` on a directory that already holds an identity.
    #[error("{} already holds an identity; use another --home, or remove it deliberately", .0.display())]
    ProfileExists(PathBuf),
    /// `profile.toml` does not parse.
    #[error("{} is damaged: {reason}", path.display())]
    DamagedProfile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No passphrase available or the two entries differ.
    #[error("{0}")]
    Passphrase(&'static str),

    /// A size or count another party controls is beyond what the client accepts.
    #[error("{what} is {got}, more than the {max} allowed")]
    TooLarge {
        /// What was measured.
        what: &'static str,
        /// Its value.
        got: u64,
        /// The limit.
        max: u64,
    },
    /// An envelope, receipt or attachment failed verification or does not decode: it is
    /// dropped, never shown.
    #[error("{0}")]
    BadEnvelope(String),
    /// A cryptographic operation on our own data failed.
    #[error(transparent)]
    Crypto(#[from] pocnet_crypto::Error),
    /// A stored row does not decrypt or decode (damaged or from another identity).
    #[error("the local store is damaged: {0}")]
    DamagedStore(String),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The local database failed.
    #[error("local store: {0}")]
    Store(#[from] rusqlite::Error),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io {
            context: "I/O error".into(),
            source,
        }
    }
}

/// Adds what was being done to an I/O error.
pub(crate) trait IoContext<T> {
    /// Wraps the error with `what`.
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}

impl Error {
    /// Whether the error condemns the envelope itself (it is acknowledged and dropped)
    /// rather than the network or this device (the item stays at the relay for a retry).
    pub fn condemns_envelope(&self) -> bool {
        matches!(self, Error::BadEnvelope(_) | Error::TooLarge { .. })
    }

    /// The exit code `pocnet` uses for this error (see `pocnet --help`).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::BadMessageId(_) => 2,
            Error::WrongPassphrase(_) | Error::Passphrase(_) | Error::DamagedKeyFile { .. } => 3,
            Error::NoProfile(_) | Error::ProfileExists(_) | Error::DamagedProfile { .. } | Error::NotEnrolledHere => 4,
            Error::NotEnrolled | Error::Revoked => 5,
            Error::WrongRelayKey | Error::BadRelaySignature => 6,
            Error::RelayUnreachable(_) | Error::Connection(_) | Error::Incomplete(_) => 7,
            Error::Relay { .. } | Error::Protocol(_) => 8,
            Error::ContactChanged { .. } => 9,
            Error::DirectoryFork { .. } => 12,
            Error::RelayLied(_) => 6,
            Error::BlockedAtRelay { .. } => 8,
            Error::DirectoryRefused(_) => 13,
            Error::TlpRefused(_) => 14,
            Error::UnknownContact { .. }
            | Error::AmbiguousContact { .. }
            | Error::NoRecipients
            | Error::UnknownMessage(_)
            | Error::AmbiguousMessage { .. }
            | Error::NotSentByYou(_) => 10,
            Error::TooLarge { .. } | Error::BadEnvelope(_) => 11,
            Error::Crypto(_) | Error::DamagedStore(_) | Error::Io { .. } | Error::Store(_) => 1,
        }
    }
}
