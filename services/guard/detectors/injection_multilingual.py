"""Injection and jailbreak phrasings in Spanish, Portuguese, French, German, Italian, Turkish, Japanese, Chinese,
Russian, Arabic and Persian: the same three moves as the English rules (drop the earlier instructions, show the
system prompt, become a model without restrictions), each anchored on the words a speaker of the language uses for
them. Albanian, Zulu, Irish and Scottish Gaelic have rules for the pretexts the English rules know (new important
instructions, developer mode, debugging, a training exercise or test pipeline, "if you are asked to summarise,
instead", instructions forgotten earlier) and for the system message and the model's own identifier.

The n-gram model learns mostly from English, so these rules carry the other languages. Patterns read the normalized
text (NFKC, lower case); CJK has no word boundaries, so those alternatives are written without ``\\b``.
"""

from __future__ import annotations

from services.guard.detectors._rule import Rule, rule

_GAP = r"(?:[\w'\u2019\-]+\s+){0,3}?"  # up to three words

MULTILINGUAL_RULES: tuple[Rule, ...] = (
    rule(
        "ignore_previous_instructions_ml",
        # es / pt / fr / it: verb, up to three words, the noun, an adjective of "earlier"
        r"\b(?:ignora|ignore|ignoren|ignorad|ignorem|ignorez|ignorer|olvida|olvide|olviden|descarta|descarte|omite|"
        r"esqueça|esqueca|esqueçam|desconsidere|despreze|oublie|oubliez|oublier|dimentica|dimenticate|trascura)\s+"
        + _GAP
        + r"(?:instrucciones|indicaciones|reglas|órdenes|directrices|instruções|instrucoes|orientações|regras|ordens|"
        r"diretrizes|instructions|consignes|règles|directives|ordres|istruzioni|regole|indicazioni|direttive)\s+"
        r"(?:\w+\s+)?(?:anteriores|previas|prévias|precedentes|originales|originais|iniciales|iniciais|de arriba|"
        r"acima|précédentes|precedentes|antérieures|anterieures|initiales|originales|ci-dessus|precedenti|iniziali|"
        r"originali|del sistema|do sistema|du système)|"
        r"\bne (?:tiens|tenez) (?:plus )?pas compte (?:de |des |du )" + _GAP + r"(?:instructions|consignes|règles)|"
        # de: verb, words, an adjective of "earlier", the noun
        r"\b(?:ignorier\w*|vergiss|vergesst|vergessen sie|missachte\w*|verwirf|übergehe)\s+(?:\w+\s+){0,3}?"
        r"(?:vorherigen|bisherigen|früheren|obigen|vorangegangenen|ursprünglichen|alten|vorigen|sämtlichen|alle)\s+"
        r"(?:\w+\s+)?(?:anweisungen|instruktionen|regeln|befehle|vorgaben|richtlinien)|"
        # tr
        r"\b(?:önceki|yukaridaki|tüm|bütün)\s+(?:\w+\s+)?(?:talimatlari|talimatlari|komutlari|kurallari)\s+"
        r"(?:\w+\s+)?(?:yok say|görmezden gel|unut|dikkate alma|boşver)|"
        r"\b(?:talimat\w*|kural\w*|sistem mesaj\w*|rolünü)\s+(?:\w+\s+)?(?:yok say|görmezden gel|unut|iptal)|"
        # ru
        r"\b(?:игнорируй|игнорируйте|проигнорируй|забудь|забудьте)\s+(?:\w+\s+){0,2}?(?:инструкции|указания|правила)|"
        # ja / zh
        r"(?:以前|前|これまで|上記|先|最初|元|すべて|全て)の\w{0,6}?(?:指示|命令|ルール|指令|設定)(?:を|は)?"
        r"(?:すべて|全て)?(?:無視|忘れ)|"
        r"(?:忽略|无视|忘记|忘掉|無視)(?:之前|以上|上面|先前|所有|前面|此前)?的?(?:所有)?的?(?:指令|指示|说明|规则|規則)",
        0.85,
        "instruc|indicacion|reglas|órdenes|directrices|instruç|orientaç|regras|ordens|diretrizes|consignes|règles|"
        "directives|ordres|istruzioni|regole|indicazioni|direttive|anweisung|instruktion|regeln|befehle|vorgaben|"
        "richtlinien|talimat|komutlar|kural|sistem mesaj|rolünü|инструкц|указани|правил|"
        "指示|命令|ルール|指令|設定|说明|规则|規則",
    ),
    rule(
        "system_prompt_request_ml",
        r"\b(?:muestra|muéstrame|revela|revélame|imprime|dime|repite|enséñame|escribe|mostre|mostra|revele|imprima|"
        r"diga|repita|exiba|affiche|affichez|montre|montrez|révèle|révèlez|révélez|répète|répétez|donne-moi|"
        r"donnez-moi|imprime|divulgue|divulguez|rivela|stampa|ripeti|dimmi)\s+"
        + _GAP
        + r"(?:prompt|mensaje|mensagem|instrucciones|instruções|indicaciones|consignes|instructions|message|messaggio|"
        r"istruzioni)\s+(?:(?:del|de|do|di|du)\s+)?(?:sistema|système|systeme|initiales|iniciales|iniciais)|"
        r"\b(?:gib|gebt|geben sie|zeig|zeige|zeigt|nenne|wiederhole|verrate|drucke|offenbare|poste)\w*\s+"
        r"(?:\w+\s+){0,5}?(?:system-?(?:prompt|anweisungen?|nachricht|eingabeaufforderung|vorgaben)|"
        r"systemeingabeaufforderung)|"
        r"\b(?:покажи|выведи|раскрой|повтори)\s+(?:\w+\s+){0,2}?(?:системн\w+ (?:промпт|подсказк\w+|инструкци\w+))|"
        r"システムプロンプト(?:を|の内容を|の全文を)?(?:表示|出力|教え|見せ|開示|公開)|"
        r"(?:显示|输出|告诉我|透露|打印|给我看)(?:你的)?(?:系统提示词?|系统指令|系统消息)",
        0.8,
        "sistema|système|systeme|initiales|iniciales|iniciais|system|систем|システムプロンプト|系统",
    ),
    rule(
        "unrestricted_persona_ml",
        r"\b(?:eres|actúa como|actua como|compórtate como|responde|responda|modelo|asistente|você é|voce e|aja como|"
        r"atue como|assistente|tu es|vous êtes|agis comme|agissez comme|réponds|répondez|modèle|assistant|"
        r"du bist|sie sind|agiere als|handle als|antworte|modell|assistent|sei|agisci come|rispondi|yanit ver|"
        r"cevap ver|sen artik|responder|répondre|repondre|rispondere|antworten|beantworte|befolgst)\b[^.\n]{0,60}?"
        r"\b(?:sin|ningún|ninguna|sem|nenhuma|nenhum|sans|aucune|aucun|ohne|"
        r"keine|senza|nessuna|nessun|hiçbir|olmadan)\s+(?:\w+\s+)?(?:restricciones|restricción|filtros?|censura|límites|"
        r"limites|reglas|restrições|restricoes|regras|restrictions?|filtres?|censure|règles|einschränkung\w*|zensur|"
        r"regeln|grenzen|beschränkung\w*|einschraenkung\w*|richtlinien|restrizioni|filtri|limiti|regole|kisitlama\w*|"
        r"sinir\w*|filtre\w*|kural\w*)|"
        r"\b(?:modo desarrollador|modo de desarrollador|modo desenvolvedor|modo de desenvolvedor|mode développeur|"
        r"entwicklermodus|modalità sviluppatore|geliştirici modu|sansürsüz|filtresiz|kisitlamasiz|"
        r"du bist (?:jetzt |nun )?uneingeschränkt|kisitlama(?:si)? (?:olmadan|olmayan)|sansür uygulama|"
        r"reddedemezsin)\b|"
        r"(?:制限|フィルター|検閲|ルール)(?:なし|のない|を(?:解除|無視))|開発者モード|脱獄|"
        r"(?:没有|不受|无)(?:任何)?(?:限制|约束|过滤|审查)",
        0.75,
        "restric|filtr|filter|censur|límites|limites|limiti|reglas|regras|règles|regeln|regole|einschränk|zensur|"
        "grenzen|beschränk|einschraenk|richtlinien|kisitlama|sinir|kural|desarrollador|desenvolvedor|développeur|entwicklermodus|sviluppatore|"
        "geliştirici|sansürsüz|filtresiz|uneingeschränkt|sansür|reddedemezsin|制限|フィルター|検閲|ルール|開発者モード|脱獄|限制|约束|过滤|审查",
    ),
    rule(
        "remove_restrictions_ml",
        # tr (dotless and dotted i folded to i): remove all restrictions, switch off the filter, refuse nothing;
        # de: no more rules from now on; ru / ar / fa: without restrictions or censorship.
        r"\b(?:tüm |bütün |her )?(?:kisitlama\w*|filtre\w*|güvenlik (?:filtre|politika|kural|mod)\w*|kural\w*|"
        r"sansür\w*)\s+(?:\w+\s+)?(?:kaldir|kapat|devre diş|geçersiz kil|yok say|kapali)|"
        r"\bhiçbir (?:şeyi|isteği|talebi) reddetme\b|\bkural tanimayan\b|"
        r"\b(?:ab (?:jetzt|sofort)|von nun an)\b[^.\n]{0,40}?\b(?:keine regeln|keine einschränkungen|keine grenzen|"
        r"ohne (?:regeln|einschränkungen|zensur))|\bohne jede (?:einschränkung|zensur|grenze)\b|"
        r"(?<!\w)без (?:каких-либо |всяких |любых )?(?:ограничений|цензуры|фильтров)\b|"
        r"(?:بلا|بدون|دون) (?:أي |اي )?(?:قيود|رقابة|رفض|فلتر)|بدون (?:هیچ )?(?:محدودیت|سانسور)",
        0.75,
        "kisitlama|filtre|güvenlik|kural|sansür|reddetme|keine|ohne|без|قيود|رقابة|رفض|فلتر|محدودیت|سانسور",
    ),
    rule(
        "ignore_and_reveal_ml",
        # tr: show / leak the system prompt or the hidden instructions; de: ignore your guidelines, new instructions;
        # ar / fa: ignore the previous instructions, the system prompt.
        r"\b(?:sistem (?:istem|mesaj|talimat|komut)\w*|(?:gizli|iç|dahili) talimat\w*)\s+(?:\w+\s+)?(?:göster|"
        r"sizdir|yaz|paylaş|ver|açikla|söyle)|"
        r"\b(?:ignorier\w*|missachte\w*|vergiss)\s+(?:deine|ihre|alle|sämtliche)\s+(?:\w+\s+)?(?:richtlinien|"
        r"regeln|anweisungen|vorgaben|einschränkungen)\b|\bneue anweisungen\s*:|"
        r"تجاهل (?:\w+ ){0,2}?(?:التعليمات|الأوامر|القواعد)|موجه النظام|تعليمات النظام|رسالة النظام|"
        r"(?:دستور|دستورات|دستورهای)\w* (?:\w+ ){0,2}?(?:را )?نادیده بگیر|پیام سیستمی|پرامپت سیستم",
        0.8,
        "sistem|gizli|iç|dahili|ignorier|missachte|vergiss|neue anweisungen|تجاهل|النظام|نادیده|سیستم",
    ),
    rule(
        "pretext_low_resource_ml",
        # sq / zu / ga / gd: the pretexts of the English pretext rules and what they ask for.
        r"udhëzime të reja|kërkes\w* (?:tënde |së )?(?:të |e )?sistemit|mesazh\w* (?:tënd |e )?(?:të |e )?sistemit|"
        r"modalitetin zhvillues|mundësuar diagnostikimin|id-në tënde unike|ushtrimi trajnimi|procesi testimi|"
        r"nëse të kërkohet të\b[^\n]{0,80}?në vend të kësaj|bëra një gabim kur të dhashë udhëzimet|"
        r"imiyalelo emisha|umyalezo wakho wesistimu|wesistimu\b|imodi yonjiniyela|ukulungisa amaphutha, sicela|"
        r"i-id yakho eyingqayizivele|yokuzilolonga, unikezwe|yohlelo lokuhlola|"
        r"uma utshelwe ukuthi\b[^\n]{0,80}?esikhundleni salokho|ngikunikeza imiyalo yakho|"
        r"treoracha nua|teachtaireacht chórais|mód forbartha|dífhabhtú a chumasú|uimhir aitheantais uathúil|"
        r"chleachtadh traenála|phíblíne tástála|má iarrtar ort\b[^\n]{0,80}?ina ionad sin|"
        r"thug mé na treoracha duit|"
        r"stiùireadh ùr|stiùiridhean ùra|teachdaireachd siostam|teachdaireachd an t-siostaim|modh leasachaidh|"
        r"debugadh a chomasachadh|an id sònraichte agad|eacarsaich trèanaidh|phìob-loidhne deuchainn|"
        r"ma thèid iarraidh ort\b[^\n]{0,80}?an àite sin|thug mi na stiùiridhean",
        0.75,
        "udhëzime|sistemit|zhvillues|diagnostikimin|unike|trajnimi|testimi|në vend|gabim|imiyalelo|wesistimu|"
        "yonjiniyela|amaphutha|eyingqayizivele|yokuzilolonga|lokuhlola|esikhundleni|imiyalo|treoracha|chórais|"
        "forbartha|dífhabhtú|aitheantais|traenála|tástála|ina ionad|stiùireadh|stiùiridhean|siostam|siostaim|"
        "leasachaidh|debugadh|sònraichte|trèanaidh|deuchainn|an àite",
    ),
)
