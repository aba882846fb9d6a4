//! The structured fields of an alert in the POC's language: English, Spanish, French or
//! Portuguese, chosen from the POC's language tags in the directory. Free text (headline,
//! description, instruction, notes) is never translated: it is shown as written.

use pocnet_crypto::Tlp;

use super::content::{Category, Certainty, ResponseType, Severity, Urgency};

/// A language pocnet shows structured fields in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Spanish.
    Es,
    /// French.
    Fr,
    /// Portuguese.
    Pt,
}

impl Lang {
    /// The first tag whose primary subtag is `en`, `es`, `fr` or `pt` (any case; `es-419`,
    /// `pt_BR` count); English when none is.
    pub fn from_tags(tags: &[String]) -> Lang {
        tags.iter()
            .find_map(|t| {
                let primary = t.trim().split(['-', '_']).next().unwrap_or("");
                match primary.to_ascii_lowercase().as_str() {
                    "en" => Some(Lang::En),
                    "es" => Some(Lang::Es),
                    "fr" => Some(Lang::Fr),
                    "pt" => Some(Lang::Pt),
                    _ => None,
                }
            })
            .unwrap_or_default()
    }

    /// The BCP 47 / RFC 3066 tag: `en`, `es`, `fr`, `pt`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
            Lang::Fr => "fr",
            Lang::Pt => "pt",
        }
    }
}

/// Everything [`label`] translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Label {
    /// A severity value.
    Severity(Severity),
    /// An urgency value.
    Urgency(Urgency),
    /// A certainty value.
    Certainty(Certainty),
    /// A category value.
    Category(Category),
    /// A response type value.
    Response(ResponseType),
    /// What a TLP 2.0 label means.
    TlpMeaning(Tlp),
    /// "EXERCISE — NOT A REAL INCIDENT".
    Exercise,
    /// "ALERT".
    Alert,
    /// "UPDATE".
    Update,
    /// "CANCELLED".
    Cancelled,
    /// "ALL CLEAR".
    AllClear,
    /// "Acknowledge within".
    AcknowledgeWithin,
    /// "time left before the alternate is called".
    TimeLeft,
    /// "acknowledge with".
    AcknowledgeWith,
    /// "from".
    From,
    /// "incident".
    Incident,
    /// "instruction".
    Instruction,
    /// "Severity".
    SeverityName,
    /// "Urgency".
    UrgencyName,
    /// "Certainty".
    CertaintyName,
    /// "Category".
    CategoryName,
    /// "Response".
    ResponseName,
    /// "late release".
    LateRelease,
    /// "repeat".
    Repeat,
}

impl Label {
    /// Every label, for completeness checks.
    pub fn all() -> Vec<Label> {
        let mut v = Vec::new();
        v.extend(Severity::ALL.iter().map(|x| Label::Severity(*x)));
        v.extend(Urgency::ALL.iter().map(|x| Label::Urgency(*x)));
        v.extend(Certainty::ALL.iter().map(|x| Label::Certainty(*x)));
        v.extend(Category::ALL.iter().map(|x| Label::Category(*x)));
        v.extend(ResponseType::ALL.iter().map(|x| Label::Response(*x)));
        v.extend(
            [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict, Tlp::Red]
                .into_iter()
                .map(Label::TlpMeaning),
        );
        v.extend([
            Label::Exercise,
            Label::Alert,
            Label::Update,
            Label::Cancelled,
            Label::AllClear,
            Label::AcknowledgeWithin,
            Label::TimeLeft,
            Label::AcknowledgeWith,
            Label::From,
            Label::Incident,
            Label::Instruction,
            Label::SeverityName,
            Label::UrgencyName,
            Label::CertaintyName,
            Label::CategoryName,
            Label::ResponseName,
            Label::LateRelease,
            Label::Repeat,
        ]);
        v
    }
}

/// `[en, es, fr, pt]`.
type Row = [&'static str; 4];

fn row(l: Label) -> Row {
    use Category as C;
    use Certainty as Ce;
    use ResponseType as R;
    use Severity as S;
    use Urgency as U;
    match l {
        Label::Severity(s) => match s {
            S::Extreme => ["Extreme", "Extrema", "Extrême", "Extrema"],
            S::Severe => ["Severe", "Grave", "Sévère", "Grave"],
            S::Moderate => ["Moderate", "Moderada", "Modérée", "Moderada"],
            S::Minor => ["Minor", "Menor", "Mineure", "Menor"],
            S::Unknown => ["Unknown", "Desconocida", "Inconnue", "Desconhecida"],
        },
        Label::Urgency(u) => match u {
            U::Immediate => ["Immediate", "Inmediata", "Immédiate", "Imediata"],
            U::Expected => ["Expected (within the hour)", "Prevista (dentro de la hora)", "Attendue (dans l'heure)", "Esperada (dentro de uma hora)"],
            U::Future => ["Future", "Futura", "Future", "Futura"],
            U::Past => ["Past", "Pasada", "Passée", "Passada"],
            U::Unknown => ["Unknown", "Desconocida", "Inconnue", "Desconhecida"],
        },
        Label::Certainty(c) => match c {
            Ce::Observed => ["Observed", "Observada", "Observée", "Observada"],
            Ce::Likely => ["Likely", "Probable", "Probable", "Provável"],
            Ce::Possible => ["Possible", "Posible", "Possible", "Possível"],
            Ce::Unlikely => ["Unlikely", "Improbable", "Improbable", "Improvável"],
            Ce::Unknown => ["Unknown", "Desconocida", "Inconnue", "Desconhecida"],
        },
        Label::Category(c) => match c {
            C::Geo => ["Geophysical", "Geofísica", "Géophysique", "Geofísica"],
            C::Met => ["Meteorological", "Meteorología", "Météorologie", "Meteorologia"],
            C::Safety => ["General safety", "Seguridad general", "Sécurité générale", "Segurança geral"],
            C::Security => ["Security", "Seguridad pública", "Sûreté", "Segurança pública"],
            C::Rescue => ["Rescue and recovery", "Rescate y recuperación", "Secours et sauvetage", "Resgate e recuperação"],
            C::Fire => ["Fire", "Incendio", "Incendie", "Incêndio"],
            C::Health => ["Health", "Salud", "Santé", "Saúde"],
            C::Env => ["Environmental", "Medio ambiente", "Environnement", "Meio ambiente"],
            C::Transport => ["Transport", "Transporte", "Transports", "Transporte"],
            C::Infra => ["Infrastructure", "Infraestructura", "Infrastructures", "Infraestrutura"],
            C::Cbrne => ["CBRNE", "QBRNE", "NRBCE", "QBRNE"],
            C::Other => ["Other", "Otros", "Autre", "Outros"],
        },
        Label::Response(r) => match r {
            R::Shelter => ["Take shelter", "Refugiarse", "Se mettre à l'abri", "Abrigar-se"],
            R::Evacuate => ["Evacuate", "Evacuar", "Évacuer", "Evacuar"],
            R::Prepare => ["Prepare", "Prepararse", "Se préparer", "Preparar-se"],
            R::Execute => ["Execute the planned action", "Ejecutar la acción prevista", "Exécuter l'action prévue", "Executar a ação prevista"],
            R::Avoid => ["Avoid", "Evitar", "Éviter", "Evitar"],
            R::Monitor => ["Monitor", "Vigilar", "Surveiller", "Acompanhar"],
            R::Assess => ["Assess", "Evaluar", "Évaluer", "Avaliar"],
            R::AllClear => ["All clear", "Fin de la alerta", "Fin d'alerte", "Fim do alerta"],
            R::None => ["No action", "Ninguna acción", "Aucune action", "Nenhuma ação"],
        },
        Label::TlpMeaning(t) => match t {
            Tlp::Red => [
                "For the eyes and ears of individual recipients only, no further disclosure.",
                "Solo para los ojos y oídos de los destinatarios individuales, sin ninguna otra divulgación.",
                "Réservé aux yeux et aux oreilles des seuls destinataires individuels, sans autre divulgation.",
                "Somente para os olhos e ouvidos dos destinatários individuais, sem nenhuma outra divulgação.",
            ],
            Tlp::AmberStrict => [
                "Limited disclosure, restricted to the recipient's organisation only.",
                "Divulgación limitada, restringida únicamente a la organización del destinatario.",
                "Divulgation limitée, réservée à la seule organisation du destinataire.",
                "Divulgação limitada, restrita somente à organização do destinatário.",
            ],
            Tlp::Amber => [
                "Limited disclosure, recipients may share it on a need-to-know basis within their organisation and its clients.",
                "Divulgación limitada: los destinatarios pueden compartirla, según la necesidad de conocer, dentro de su organización y con sus clientes.",
                "Divulgation limitée : les destinataires peuvent la partager, selon le besoin d'en connaître, au sein de leur organisation et avec ses clients.",
                "Divulgação limitada: os destinatários podem compartilhá-la, com base na necessidade de conhecer, dentro de sua organização e com os clientes dela.",
            ],
            Tlp::Green => [
                "Limited disclosure, recipients may share it within their community.",
                "Divulgación limitada: los destinatarios pueden compartirla dentro de su comunidad.",
                "Divulgation limitée : les destinataires peuvent la partager au sein de leur communauté.",
                "Divulgação limitada: os destinatários podem compartilhá-la dentro de sua comunidade.",
            ],
            Tlp::Clear => [
                "Recipients may share it with the world; there is no limit on disclosure.",
                "Los destinatarios pueden compartirla con todo el mundo; no hay límite de divulgación.",
                "Les destinataires peuvent la partager avec tout le monde ; la divulgation n'est pas limitée.",
                "Os destinatários podem compartilhá-la com todos; não há limite de divulgação.",
            ],
        },
        Label::Exercise => [
            "EXERCISE — NOT A REAL INCIDENT",
            "EJERCICIO — NO ES UN INCIDENTE REAL",
            "EXERCICE — CE N'EST PAS UN INCIDENT RÉEL",
            "EXERCÍCIO — NÃO É UM INCIDENTE REAL",
        ],
        Label::Alert => ["ALERT", "ALERTA", "ALERTE", "ALERTA"],
        Label::Update => ["UPDATE", "ACTUALIZACIÓN", "MISE À JOUR", "ATUALIZAÇÃO"],
        Label::Cancelled => ["CANCELLED", "CANCELADA", "ANNULÉE", "CANCELADA"],
        Label::AllClear => ["ALL CLEAR", "FIN DE LA ALERTA", "FIN D'ALERTE", "FIM DO ALERTA"],
        Label::AcknowledgeWithin => [
            "Acknowledge within",
            "Acusar recibo dentro de",
            "Accuser réception sous",
            "Confirmar o recebimento em até",
        ],
        Label::TimeLeft => [
            "time left before the alternate is called",
            "tiempo restante antes de llamar al suplente",
            "temps restant avant l'appel du suppléant",
            "tempo restante antes de acionar o suplente",
        ],
        Label::AcknowledgeWith => ["acknowledge with", "acuse recibo con", "accusez réception avec", "confirme com"],
        Label::From => ["from", "de", "de", "de"],
        Label::Incident => ["incident", "incidente", "incident", "incidente"],
        Label::Instruction => ["instruction", "instrucción", "consigne", "instrução"],
        Label::SeverityName => ["Severity", "Gravedad", "Gravité", "Gravidade"],
        Label::UrgencyName => ["Urgency", "Urgencia", "Urgence", "Urgência"],
        Label::CertaintyName => ["Certainty", "Certeza", "Certitude", "Certeza"],
        Label::CategoryName => ["Category", "Categoría", "Catégorie", "Categoria"],
        Label::ResponseName => ["Response", "Respuesta", "Réponse", "Resposta"],
        Label::LateRelease => ["late release", "envío tardío", "diffusion tardive", "envio atrasado"],
        Label::Repeat => ["repeat", "repetición", "répétition", "repetição"],
    }
}

/// `l` in `lang`.
pub fn label(lang: Lang, l: Label) -> &'static str {
    let r = row(l);
    match lang {
        Lang::En => r[0],
        Lang::Es => r[1],
        Lang::Fr => r[2],
        Lang::Pt => r[3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_tags_takes_the_first_supported_primary_subtag() {
        let t = |v: &[&str]| Lang::from_tags(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(t(&[]), Lang::En);
        assert_eq!(t(&["de", "qu"]), Lang::En);
        assert_eq!(t(&["qu", "es-419", "en"]), Lang::Es);
        assert_eq!(t(&["FR-ca"]), Lang::Fr);
        assert_eq!(t(&["pt_BR", "es"]), Lang::Pt);
        // A primary subtag is matched whole: "esp" or "english" are not languages we know.
        assert_eq!(t(&["esp", "english", "fr"]), Lang::Fr);
        assert_eq!(Lang::Pt.tag(), "pt");
    }

    #[test]
    fn every_label_is_translated_and_distinct_where_it_must_be() {
        for l in Label::all() {
            let en = label(Lang::En, l);
            for lang in [Lang::En, Lang::Es, Lang::Fr, Lang::Pt] {
                assert!(!label(lang, l).trim().is_empty(), "{l:?} in {lang:?}");
            }
            // Words that are the same in every language are acronyms or identical cognates.
            let same = [Lang::Es, Lang::Fr, Lang::Pt].iter().all(|g| label(*g, l) == en);
            assert!(!same || en == "CBRNE", "{l:?} is not translated");
        }
        // Each language names its values apart within one field.
        for lang in [Lang::En, Lang::Es, Lang::Fr, Lang::Pt] {
            let cats: std::collections::HashSet<_> =
                Category::ALL.iter().map(|c| label(lang, Label::Category(*c))).collect();
            assert_eq!(cats.len(), Category::ALL.len(), "{lang:?}");
            let resp: std::collections::HashSet<_> = ResponseType::ALL
                .iter()
                .map(|c| label(lang, Label::Response(*c)))
                .collect();
            assert_eq!(resp.len(), ResponseType::ALL.len(), "{lang:?}");
        }
        assert_eq!(label(Lang::Es, Label::Severity(Severity::Extreme)), "Extrema");
        assert_eq!(
            label(Lang::Fr, Label::Exercise),
            "EXERCICE — CE N'EST PAS UN INCIDENT RÉEL"
        );
        assert_eq!(label(Lang::Pt, Label::AllClear), "FIM DO ALERTA");
    }
}
