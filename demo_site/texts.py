"""The privacy policy page's own words, in the policy's languages (English and French).

The purposes themselves (titles, descriptions, cookies, Consent Mode types, GPC) come from the
policy file; these are the headings and sentences around them.
"""

from __future__ import annotations

PRIVACY_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Privacy policy",
        "lead": "{controller} decides why and how personal data is used on this site. "
        "Questions, or a request about your data: {contact}.",
        "version": "Policy version {version}, revision {revision}.",
        "purposes_heading": "What we ask your consent for",
        "purposes_intro": "Strictly necessary cookies are always on. Everything else is off until you "
        "say yes, and you can change your mind at any time.",
        "always_on": "Always on",
        "needs_consent": "Only with your consent",
        "cookies": "Cookies",
        "no_cookies": "none",
        "consent_mode": "Google Consent Mode types",
        "gpc": "Global Privacy Control",
        "gpc_yes": "Honoured: a GPC signal from your browser turns this off",
        "gpc_no": "Not applicable",
        "lifetime_heading": "How long we keep your choice",
        "lifetime": "Your choice is kept in a cookie called “consentkit” for {days} days; then we ask "
        "again. When we change this policy in a way that matters, we ask everyone again.",
        "regions_heading": "Where you are visiting from",
        "regions_text": "The law of your region decides how we ask. In the European Union, the United "
        "Kingdom and Quebec (opt-in), nothing but the strictly necessary is used until you agree. In the "
        "rest of Canada and in the United States (opt-out), analytics and advertising are on until you "
        "opt out with “Do Not Sell or Share My Personal Information”, on every page; a Global Privacy "
        "Control signal opts you out of advertising at once. In Japan (notice), we tell you what we "
        "use and you can turn it off. Elsewhere we ask as in Europe. A choice made under a laxer law "
        "does not count under a stricter one: if you travel from California to Germany, we ask again.",
        "regions_here": "You are visiting from {region}: the law there is {model}.",
        "regions_nowhere": "We do not know where you are visiting from: we ask as in Europe ({model}).",
        "gpc_heading": "Global Privacy Control",
        "gpc_text": "If your browser sends the Global Privacy Control signal, we treat it as a refusal of "
        "the purposes marked above, and say so in the cookie banner. Our declaration is at",
        "records_heading": "Proof of your choices",
        "records_text": "Every choice you make is kept in a tamper-evident consent record, with a receipt "
        "you can check. See your choices, change them and download your records on",
        "other_heading": "Consents that are not cookies",
        "other_text": "Customers can agree to marketing by text message or e-mail, and to the recording of "
        "their calls with customer care, on their account page. We keep the exact wording they "
        "agreed to, and they can withdraw at any time.",
        "browser_heading": "Cookies in your browser",
        "browser_text": "You can also block or delete cookies in your browser itself:",
        "browser_link": "how to block or delete cookies in your browser",
        "your_privacy": "Your privacy",
        "account": "your account",
    },
    "fr": {
        "title": "Politique de confidentialité",
        "lead": "{controller} décide pourquoi et comment les données personnelles sont utilisées sur ce "
        "site. Pour une question ou une demande concernant vos données : {contact}.",
        "version": "Version {version} de la politique, révision {revision}.",
        "purposes_heading": "Ce pour quoi nous demandons votre consentement",
        "purposes_intro": "Les cookies strictement nécessaires sont toujours actifs. Tout le reste est "
        "désactivé tant que vous n'avez pas dit oui, et vous pouvez changer d'avis à tout moment.",
        "always_on": "Toujours actif",
        "needs_consent": "Seulement avec votre consentement",
        "cookies": "Cookies",
        "no_cookies": "aucun",
        "consent_mode": "Types Google Consent Mode",
        "gpc": "Global Privacy Control",
        "gpc_yes": "Respecté : un signal GPC de votre navigateur désactive cette finalité",
        "gpc_no": "Sans objet",
        "lifetime_heading": "Combien de temps nous gardons votre choix",
        "lifetime": "Votre choix est conservé dans un cookie nommé « consentkit » pendant {days} jours ; "
        "nous vous le redemandons ensuite. Quand nous modifions cette politique de façon importante, "
        "nous redemandons à tout le monde.",
        "regions_heading": "D'où vous nous rendez visite",
        "regions_text": "La loi de votre région décide de la manière dont nous vous demandons. Dans "
        "l'Union européenne, au Royaume-Uni et au Québec (consentement préalable), seul le strictement "
        "nécessaire est utilisé tant que vous n'avez pas accepté. Dans le reste du Canada et aux "
        "États-Unis (droit d'opposition), la mesure d'audience et la publicité sont actives jusqu'à ce "
        "que vous vous y opposiez avec « Ne pas vendre ni partager mes renseignements personnels », sur "
        "chaque page ; un signal Global Privacy Control vous retire aussitôt de la publicité. Au Japon "
        "(avis), nous vous disons ce que nous utilisons et vous pouvez le désactiver. Ailleurs, nous "
        "demandons comme en Europe. Un choix fait sous une loi moins stricte ne vaut pas sous une loi "
        "plus stricte : si vous passez de la Californie à l'Allemagne, nous vous demandons à nouveau.",
        "regions_here": "Vous nous rendez visite depuis {region} : la loi y est {model}.",
        "regions_nowhere": "Nous ne savons pas d'où vous nous rendez visite : nous demandons comme en "
        "Europe ({model}).",
        "gpc_heading": "Global Privacy Control",
        "gpc_text": "Si votre navigateur envoie le signal Global Privacy Control, nous le traitons comme un "
        "refus des finalités indiquées ci-dessus, et la bannière le signale. Notre déclaration :",
        "records_heading": "La preuve de vos choix",
        "records_text": "Chacun de vos choix est conservé dans un registre de consentement infalsifiable, "
        "avec un reçu vérifiable. Consultez et modifiez vos choix, et téléchargez vos "
        "enregistrements, sur la page",
        "other_heading": "Les consentements qui ne sont pas des cookies",
        "other_text": "Nos clients peuvent accepter le marketing par SMS ou par courriel, et "
        "l'enregistrement de leurs appels avec le service client, sur la page de leur compte. Nous "
        "conservons le texte exact qu'ils ont accepté, et ils peuvent retirer leur consentement à "
        "tout moment.",
        "browser_heading": "Les cookies dans votre navigateur",
        "browser_text": "Vous pouvez aussi bloquer ou supprimer les cookies dans votre navigateur lui-même :",
        "browser_link": "comment bloquer ou supprimer les cookies dans votre navigateur",
        "your_privacy": "Vos choix de confidentialité",
        "account": "votre compte",
    },
}
