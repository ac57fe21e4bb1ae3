"""Refusal and model-disclaimer phrases, per language, as RE2 patterns over a lower-cased opening.

The `refusal` filter (and the scorer's refusal feature) look for these in the first characters of
an answer. Each language lists the openings models write when they decline or disclaim ("As an AI
language model", "I can't help with that", "I have no access to real-time data"), not every
sentence with "sorry" in it. A phrase that also opens ordinary writing in that language counts only
at the start of a sentence and followed by what follows a disclaimer, "I" or "not" ("Como IA, no
tengo", "Als KI kann ich"): "Tecnologías como inteligencia artificial" or "Как искусственный
интеллект меняет медицину" ("how AI is changing medicine") do not count.

RE2's `\\b` knows ASCII letters only (it finds no boundary before "é" or "я"), so patterns that start
or end in other letters use `_B` and `_E`. Accented Latin, Greek, Cyrillic and Vietnamese letters
match whether the text composes them (NFC), writes the marks apart (NFD) or, as Vietnamese keyboards
do, types a letter's second mark after the composed first: see `_either_form`.
"""

from __future__ import annotations

import unicodedata

# Word edges as the spaces and punctuation around words, not as "not a letter": RE2 builds a DFA
# over UTF-8 bytes, and Unicode's letter classes in a hundred alternatives outgrew its memory
# budget (it fell back to a search 5,000 times slower on 200,000 openings).
_GAP = r"""[\s,.;:!?¡¿"'()\[\]«»„“”‘’–—…/*_-]"""
_B = rf"(?:^|{_GAP})"  # a word starts here
_E = rf"(?:{_GAP}|$)"  # a word ended here
_S = r"(?:^|[.!?¡¿:;؟\n])\s*"  # a sentence starts here
_WORDS = r"(?: [^ .!?؟،\n,]+){0,4}"  # a few more words of the clause ("... developed by OpenAI,")


def _then(words: str) -> str:
    """What a disclaimer goes on with after its comma: "I" or "not" (", no tengo ...", ", я не ...")."""
    return rf",? (?:{words}){_E}"


def _dotless(pattern: str) -> str:
    """Turkish: an upper-case I lower-cases to a dotted i ("YARDIMCI" -> "yardimci"), so ı matches either."""
    return pattern.replace("ı", "[ıi]")


# After "as an AI" or "I am an AI" in Chinese: the AI is the speaker when a comma, a full stop, 我 or the
# end follows it (with 助手, 模型 and the like between), not a field (作为一名人工智能研究员, 人工智能专业的学生).
def _zh_ai_end(nouns: str) -> str:
    return rf"(?:\s?(?:{nouns}))?\s?(?:[，,。.！!、：:；;\n]|我|$)"


_ZH_AI_END = _zh_ai_end("语言模型|大型语言模型|助手|助理|模型|程序|聊天机器人|系统")
_ZH_AI_END_HANT = _zh_ai_end("語言模型|大型語言模型|助手|助理|模型|程式|程序|聊天機器人|系統")

REFUSAL_PATTERNS: dict[str, list[str]] = {
    "en": [
        r"\bas an ai\b",
        r"\bas a(?:n)? (?:large )?(?:language|ai|artificial intelligence) model\b",
        r"\bi(?: am|'m) (?:just |only |merely )?an? (?:ai|artificial intelligence|language model|"
        r"large language model|chatbot|virtual assistant|text-based)\b",
        # "I'm sorry, but" and "I'm sorry, I can't ...", not "I'm so sorry I missed dinner" (an apology
        # the answer was asked to write, or a character's line in a role-play).
        r"\bi(?: am|'m) (?:so |very |really )?sorry,? but\b",
        r"\bi(?: am|'m) sorry, i(?: am|'m| can| cannot| can't| do| don't| won't| will not| must| need| have)\b",
        r"\bi apologi[sz]e,? (?:but|for any confusion)\b",
        r"\bi (?:cannot|can't|can ?not|won't|will not|am unable to|'m unable to|am not able to|'m not able to|"
        r"do not have the ability to|don't have the ability to) (?:help|assist|provide|fulfill|fulfil|comply|"
        r"create|generate|write|do that|answer|engage|support|offer|give|browse|access|share|recommend|predict|"
        r"perform)",
        r"\bmy (?:knowledge|training)(?: data)? (?:cutoff|cut-off|only goes|is limited|extends)",
        r"\b(?:as of|since) my (?:last|latest) (?:knowledge|training|update)",
        r"\bi do(?: not|n't) have (?:access to|personal|real-time|the ability|feelings|opinions|emotions|"
        r"preferences|a physical|the capability)",
        r"\bi(?:'m| am) not (?:able|capable|programmed|designed) to\b",
        r"\bit(?: is|'s) not (?:appropriate|ethical) (?:for me )?to\b",
        r"\bi must (?:decline|refuse|respectfully)\b",
    ],
    "zh-hans": [
        r"作为(?:一个|一款|一名)?\s?(?:ai|人工智能)" + _ZH_AI_END + r"|作为(?:一个|一款)?(?:大型)?语言模型",
        r"我(?:只)?是(?:一个|一款)?\s?(?:ai|人工智能|语言模型|大型语言模型)" + _ZH_AI_END,
        # "Sorry, but" or "sorry, I can't": not 对不起，我昨天没有交作业 (an apology the answer was asked to write).
        r"(?:抱歉|对不起|很遗憾)[，,！!。]?\s*(?:但|作为|我(?:无法|不能|没有办法|不可以|不会|并不|不太|没法|暂时|目前))",
        r"我(?:无法|不能|没有办法|不可以|不会)(?:为你|为您|帮你|帮您)?"
        r"(?:提供|帮助|协助|回答|完成|满足|生成|访问|浏览|预测|执行|分享|给出|创作|撰写|编写|参与|支持)",
        # 我不会推荐 is advice ("I wouldn't recommend ..."); 我无法推荐 is a refusal ("I can't recommend ...").
        r"我(?:无法|不能|没有办法|不可以)(?:为你|为您|帮你|帮您)?推荐",
        r"我(?:没有|不具备)(?:个人|实时|访问|能力|感情|情感|观点|偏好|意识|身体)",
        r"我的(?:知识|训练数据)(?:截止|有限|仅|只)",
    ],
    # Traditional characters (Taiwan, Hong Kong): the same phrases as written there.
    "zh-hant": [
        r"作為(?:一個|一款|一名)?\s?(?:ai|人工智慧|人工智能)" + _ZH_AI_END_HANT
        + r"|作為(?:一個|一款)?(?:大型)?語言模型",
        r"我(?:只)?是(?:一個|一款)?\s?(?:ai|人工智慧|人工智能|語言模型|大型語言模型)" + _ZH_AI_END_HANT,
        r"(?:抱歉|對不起|很遺憾)[，,！!。]?\s*(?:但|作為|我(?:無法|不能|沒有辦法|不可以|不會|並不|不太|沒法|暫時|目前))",
        r"我(?:無法|不能|沒有辦法|不可以|不會)(?:為你|為您|幫你|幫您)?"
        r"(?:提供|幫助|協助|回答|完成|滿足|生成|存取|訪問|瀏覽|預測|執行|分享|給出|創作|撰寫|編寫|參與|支援|支持)",
        r"我(?:無法|不能|沒有辦法|不可以)(?:為你|為您|幫你|幫您)?推薦",
        r"我(?:沒有|不具備)(?:個人|即時|實時|存取|訪問|能力|感情|情感|觀點|偏好|意識|身體)",
        r"我的(?:知識|訓練資料|訓練數據)(?:截止|有限|僅|只)",
    ],
    "ja": [
        r"申し訳(?:ありません|ございません)が|(?:ai|人工知能)(?:言語モデル|アシスタント)?として",
        r"お答えできません|お手伝いできません",
    ],
    "ko": [
        # "Sorry, but", not a bare 죄송합니다 ("I'm sorry."), which opens apologies the answer was asked to write.
        r"죄송(?:하지만|합니다만)|(?:ai|인공지능)(?: ?언어 ?모델| ?어시스턴트)?(?:로서|으로서)"
        r"|(?:ai|인공지능) ?(?:언어 ?모델|어시스턴트)입니다",
        r"(?:도와|도움을 )드릴 수 없(?:습니다|어요)",
        r"(?:제공|답변)(?:을 |해 ?)?드릴 수 없(?:습니다|어요)",
        r"(?:저는|제가) [^.!?\n]{0,40}?(?:제공|답변)(?:을 |해 ?)?할 수 없(?:습니다|어요)",
    ],
    "es": [
        _S + r"como (?:un |una )?(?:modelo de (?:lenguaje|idioma)|ia|inteligencia artificial|"
        r"asistente (?:virtual|de ia))" + _WORDS + _then("yo|no|mi|me|soy|tengo|puedo|debo|estoy"),
        _B + r"(?:lo siento|lo lamento|disculpa|disculpe|perdón|perdona)[,.]? (?:pero )?"
        r"(?:no (?:puedo|me es posible|soy capaz)|como (?:un |una )?(?:modelo|ia|inteligencia|asistente))",
        _B + r"no (?:puedo|me es posible|soy capaz de|estoy en condiciones de) "
        r"(?:ayudar|ayudarte|ayudarle|proporcionar|proporcionarte|brindar|ofrecer|responder|cumplir|generar|"
        r"escribir|crear|dar|darte|realizar|acceder|navegar|predecir|compartir|recomendar)" + _E,
        _B + r"soy (?:solo |sólo |simplemente |únicamente )?(?:un|una) (?:modelo de (?:lenguaje|idioma)|ia|"
        r"inteligencia artificial|asistente (?:virtual|de ia)|programa de computadora)" + _E,
        _B + r"no tengo (?:acceso a|la capacidad de|opiniones|sentimientos|emociones|preferencias|"
        r"experiencias personales)",
        _B + r"mis datos de entrenamiento",
    ],
    "pt": [
        _S + r"como (?:um |uma )?(?:modelo de (?:linguagem|idioma)|ia|inteligência artificial|"
        r"assistente (?:virtual|de ia))" + _WORDS + _then("eu|não|meu|minha|sou|tenho|posso|devo|estou"),
        _B + r"(?:desculpe|desculpa|sinto muito|lamento|perdão)[,.]? (?:mas )?(?:eu )?"
        r"(?:não (?:posso|consigo|sou capaz)|como (?:um |uma )?(?:modelo|ia|inteligência|assistente))",
        _B + r"não (?:posso|consigo|sou capaz de|tenho como) (?:te |lhe )?"
        r"(?:ajudar|fornecer|responder|gerar|escrever|criar|dar|oferecer|acessar|navegar|prever|compartilhar|"
        r"recomendar|realizar|atender|cumprir)" + _E,
        _B + r"sou (?:apenas |somente |só |simplesmente )?(?:um|uma) (?:modelo de (?:linguagem|idioma)|ia|"
        r"inteligência artificial|assistente (?:virtual|de ia)|programa de computador)" + _E,
        _B + r"não tenho (?:acesso a|a capacidade de|opiniões|sentimentos|emoções|preferências|"
        r"experiências pessoais)",
        _B + r"meus dados de treinamento",
    ],
    "fr": [
        _S + r"en tant qu(?:e |')(?:ia|intelligence artificielle|modèle de langage|assistant (?:ia|virtuel)|"
        r"programme informatique)" + _E,
        _B + r"(?:je suis )?(?:désolée?|navrée?)[,.]? (?:mais )?(?:je ne (?:peux|suis pas)|en tant qu)",
        _B + r"je ne (?:peux pas|peux malheureusement pas|suis pas en mesure d[e']|suis pas capable d[e']) ?"
        r"(?:vous |t'|te )?(?:aider|fournir|répondre|générer|écrire|rédiger|créer|donner|accéder|naviguer|"
        r"prédire|partager|recommander|effectuer|réaliser)",
        _B + r"je suis (?:seulement |juste |simplement |uniquement )?(?:un|une) (?:ia|intelligence artificielle|"
        r"modèle de langage|assistant (?:ia|virtuel)|programme informatique)" + _E,
        _B + r"je n'ai pas (?:accès|la capacité|d'opinions?|d'avis|de sentiments|d'émotions|de préférences)",
        _B + r"mes données d'entraînement",
    ],
    "it": [
        _S + r"come (?:un |una |un')?(?:modello (?:di linguaggio|linguistico)|ia|intelligenza artificiale|"
        r"assistente (?:virtuale|ia))" + _WORDS + _then("io|non|il mio|la mia|sono|ho|posso|devo"),
        _B + r"(?:mi dispiace|spiacente|scusa|scusami|mi scuso)[,.]? (?:ma )?"
        r"(?:non (?:posso|sono in grado)|come (?:un |una |un')?(?:modello|ia|intelligenza|assistente))",
        _B + r"non (?:posso|sono in grado di|riesco a) (?:aiutarti|aiutarla|aiutare|fornire|fornirti|rispondere|"
        r"generare|scrivere|creare|dare|darti|offrire|accedere|navigare|prevedere|condividere|consigliare|"
        r"eseguire|soddisfare)" + _E,
        _B + r"sono (?:solo |soltanto |semplicemente )?(?:un|una|un') ?(?:modello (?:di linguaggio|linguistico)|"
        r"ia|intelligenza artificiale|assistente (?:virtuale|ia))" + _E,
        _B + r"non ho (?:accesso a|la capacità di|opinioni|sentimenti|emozioni|preferenze|esperienze personali)",
        _B + r"i miei dati di addestramento",
    ],
    # German and Dutch put the verb before the subject after "Als KI ...": "Als KI-Sprachmodell kann ich".
    "de": [
        _S + r"als (?:ein |eine )?(?:ki|künstliche intelligenz|sprachmodell|ki-sprachmodell|ki-assistent|"
        r"ki-modell|virtueller assistent)(?: [^ .!?\n,]+){0,3}(?: (?:kann|habe|bin|verfüge|möchte|muss|darf) ich|"
        r", ?ich)" + _E,
        _B + r"(?:es tut mir leid|entschuldigung|entschuldige|leider)[,.]? (?:aber )?"
        r"(?:ich kann|ich bin|kann ich|bin ich)(?: ihnen| dir)?(?: dabei| hierbei| damit| hier)? nicht" + _E,
        _B + r"ich kann (?:ihnen |dir )?(?:dabei |hierbei |damit |hier |leider )*nicht "
        r"(?:helfen|weiterhelfen|behilflich|beantworten|zugreifen|vorhersagen|erfüllen)",
        _B + r"ich bin (?:leider )?nicht in der lage",
        _B + r"ich bin (?:nur |lediglich |bloß |bloss |ja nur )?(?:ein|eine) (?:ki|künstliche intelligenz|"
        r"sprachmodell|ki-sprachmodell|ki-assistent|ki-modell|computerprogramm|virtueller assistent)" + _E,
        _B + r"ich habe (?:keinen zugriff auf|keine (?:persönlichen |eigenen )?"
        r"(?:meinungen|gefühle|vorlieben|emotionen|erfahrungen))",
        _B + r"meine trainingsdaten",
    ],
    "nl": [
        _S + r"als (?:een )?(?:ai|taalmodel|ai-taalmodel|kunstmatige intelligentie|ai-assistent|"
        r"virtuele assistent)(?: [^ .!?\n,]+){0,3}(?: (?:kan|heb|ben|mag) ik|, ?ik)" + _E,
        _B + r"(?:het spijt me|sorry|excuses)[,.]? (?:maar )?ik (?:kan|ben) (?:je |u )?"
        r"(?:daar |hierbij |hier |daarmee )?(?:niet|geen)" + _E,
        _B + r"ik kan (?:je |u )?(?:daar |hierbij |hier |daarmee )?niet (?:mee )?(?:helpen|van dienst zijn)",
        _B + r"ik ben niet in staat",
        _B + r"ik ben (?:maar |slechts |gewoon |alleen )?(?:een )?(?:ai|taalmodel|ai-taalmodel|"
        r"kunstmatige intelligentie|computerprogramma|virtuele assistent)" + _E,
        _B + r"ik heb geen (?:toegang tot|persoonlijke (?:meningen|voorkeuren|gevoelens|ervaringen)|gevoelens|"
        r"emoties)",
    ],
    "pl": [
        _S + r"jako (?:model językowy|sztuczna inteligencja|ai|asystent (?:ai|sztucznej inteligencji)|"
        r"model (?:ai|sztucznej inteligencji))" + _WORDS + _then("ja|nie|jestem|mam|mogę|moja|mój|moje"),
        _B + r"przepraszam[,.]? (?:ale )?nie (?:mogę|jestem w stanie)",
        _B + r"nie (?:mogę|jestem w stanie) (?:ci |pani |panu )?(?:pomóc|udzielić|odpowiedzieć|dostarczyć|"
        r"wygenerować|napisać|stworzyć|podać|zapewnić|uzyskać dostępu|przewidzieć|polecić|spełnić)" + _E,
        _B + r"jestem (?:tylko |jedynie |po prostu )?(?:modelem językowym|sztuczną inteligencją|"
        r"programem komputerowym|asystentem (?:ai|sztucznej inteligencji))" + _E,
        _B + r"nie mam (?:dostępu do|możliwości|osobistych (?:opinii|preferencji|uczuć|doświadczeń)|uczuć|emocji)",
    ],
    "ru": [
        _S + r"как (?:языковая модель|модель ии|ии|искусственный интеллект|ии-ассистент|виртуальный ассистент|"
        r"нейросеть)" + _WORDS + _then("я|мне|у меня|мой|моя|мои"),
        _B + r"(?:извините|простите|к сожалению|мне жаль|прошу прощения)[,.]? (?:но )?"
        r"я не (?:могу|в состоянии|имею)",
        _B + r"я не (?:могу|в состоянии|имею возможности) (?:вам |тебе )?(?:помочь|предоставить|ответить|"
        r"выполнить|создать|написать|сгенерировать|дать|предложить|получить доступ|просматривать|предсказать|"
        r"поделиться|рекомендовать|порекомендовать)" + _E,
        _B + r"я (?:всего лишь|лишь|просто|только) (?:языковая модель|ии|искусственный интеллект|"
        r"компьютерная программа|виртуальный ассистент|нейросеть)" + _E,
        _B + r"я являюсь (?:языковой моделью|ии|искусственным интеллектом|виртуальным ассистентом)",
        _B + r"у меня нет (?:доступа к|личн(?:ого|ых) (?:мнени|предпочтени|чувств|опыт)|собственного мнения|"
        r"эмоций|чувств)",
        _B + r"мои (?:обучающие данные|данные обучения)",
    ],
    "uk": [
        _S + r"як (?:мовна модель|модель ші|ші|штучний інтелект|ші-асистент|віртуальний асистент|нейромережа)"
        + _WORDS + _then("я|мені|у мене|мій|моя|мої"),
        _B + r"(?:вибачте|перепрошую|на жаль|мені шкода|прошу вибачення)[,.]? (?:але )?я не (?:можу|в змозі|маю)",
        _B + r"я не (?:можу|в змозі|маю можливості) (?:вам |тобі )?(?:допомогти|надати|відповісти|виконати|створити|"
        r"написати|згенерувати|дати|запропонувати|отримати доступ|передбачити|поділитися|рекомендувати|"
        r"порекомендувати)" + _E,
        _B + r"я (?:лише|просто|всього лише|тільки) (?:мовна модель|ші|штучний інтелект|комп'ютерна програма|"
        r"віртуальний асистент|нейромережа)" + _E,
        _B + r"у мене немає (?:доступу до|особист(?:ої|их) (?:думки|вподобань|почуттів|досвіду)|власної думки|"
        r"емоцій|почуттів)",
    ],
    # Hebrew and Thai have no letter case; Thai writes no spaces between words.
    "he": [
        r"(?:כמודל|בתור מודל) (?:שפה|בינה מלאכותית)|כבינה מלאכותית|בתור בינה מלאכותית",
        r"(?:מצטער|מצטערת|סליחה)[,.]? (?:אבל |אך )?(?:אני )?(?:לא יכול|לא יכולה|אינני יכול|אינני יכולה|איני יכול)",
        r"(?:אני לא יכול|אני לא יכולה|אינני יכול|אינני יכולה|איני יכול|איני יכולה) "
        r"(?:לעזור|לסייע|לספק|לענות|ליצור|לכתוב|"
        r"לגשת|לחזות|להמליץ)",
        r"אני (?:רק |בסך הכל )?(?:מודל שפה|בינה מלאכותית|תוכנת מחשב|עוזר וירטואלי)",
        r"אין לי (?:גישה ל|דעות אישיות|דעה אישית|רגשות|העדפות|יכולת)",
    ],
    "th": [
        r"ในฐานะ(?:ที่เป็น)?\s?(?:โมเดลภาษา|ai|ปัญญาประดิษฐ์)",
        r"(?:ขออภัย|ขอโทษ)(?:ครับ|ค่ะ|คะ)?[,\s]*(?:แต่)?\s*(?:ฉัน|ผม|ดิฉัน)?ไม่สามารถ",
        r"(?:ฉัน|ผม|ดิฉัน)ไม่สามารถ(?:ช่วย|ให้ข้อมูล|ตอบ|สร้าง|เขียน|เข้าถึง|ทำนาย|แนะนำ)",
        r"(?:ฉัน|ผม|ดิฉัน)(?:เป็น|เป็นเพียง|เป็นแค่)\s?(?:โมเดลภาษา|ai|ปัญญาประดิษฐ์|โปรแกรมคอมพิวเตอร์)",
    ],
    "tr": [_dotless(p) for p in [
        _B + r"bir (?:yapay zeka|yapay zekâ|dil modeli|ai)(?: dil modeli| asistanı| modeli)? olarak",
        _B + r"(?:yardımcı olamam|yardımcı olamıyorum|yardımcı olamayacağım|sağlayamam|yanıt veremem|"
        r"cevap veremem|erişimim yok|erişemiyorum|erişimim bulunmuyor)",
        _B + r"(?:sadece |yalnızca )?bir (?:yapay zekayım|yapay zekâyım|dil modeliyim|yapay zeka dil modeliyim)",
        _B + r"kişisel (?:görüşlerim|fikirlerim|duygularım) yok",
    ]],
    "id": [  # Indonesian and Malay
        _S + r"sebagai (?:sebuah |seorang )?(?:model bahasa|ai|kecerdasan buatan|asisten (?:ai|virtual))"
        + _WORDS + _then("saya|aku"),
        _B + r"maaf[,.]? (?:tetapi |tapi |namun )?saya tidak (?:dapat|bisa|mampu|boleh)",
        _B + r"saya tidak (?:dapat|bisa|mampu|boleh) (?:membantu|memberikan|menjawab|membuat|menulis|"
        r"menghasilkan|mengakses|memprediksi|berbagi|merekomendasikan|memenuhi)" + _E,
        _B + r"saya (?:adalah |hanya |hanyalah |cuma )?(?:sebuah |seorang )?(?:model bahasa|kecerdasan buatan|"
        r"program komputer|asisten virtual)" + _E,
        _B + r"saya tidak memiliki (?:akses|kemampuan|pendapat|perasaan|emosi|preferensi|pengalaman pribadi)",
    ],
    "vi": [
        _S + r"là (?:một )?(?:mô hình ngôn ngữ|trí tuệ nhân tạo|ai|trợ lý (?:ảo|ai))" + _WORDS + _then("tôi|mình"),
        _B + r"tôi (?:chỉ )?là (?:một )?(?:mô hình ngôn ngữ|trí tuệ nhân tạo|trợ lý (?:ảo|ai)|"
        r"chương trình máy tính)" + _E,
        _B + r"tôi (?:chỉ )?là một ai(?:[,.!;:\n]|$)",
        _B + r"xin lỗi[,.]? (?:nhưng )?tôi không thể",
        _B + r"tôi không thể (?:giúp|hỗ trợ|cung cấp|trả lời|tạo|viết|truy cập|dự đoán|chia sẻ|đề xuất|"
        r"thực hiện|đáp ứng)" + _E,
        _B + r"tôi không có (?:quyền truy cập|khả năng|ý kiến|cảm xúc|sở thích|kinh nghiệm cá nhân)",
    ],
    "ar": [
        r"بصفتي (?:نموذج|ذكاء|مساعد(?:ًا|اً|ا)? (?:ذكي|افتراضي|رقمي|آلي|الذكاء))|كنموذج (?:لغوي|ذكاء)|كذكاء اصطناعي",
        r"(?:عذرًا|عذراً|عذرا|آسف|أعتذر|للأسف)[،,.]? ?(?:ولكن |لكن )?"
        r"(?:لا (?:أستطيع|يمكنني)|أنا غير قادر|لست قادر)",
        r"(?:لا (?:أستطيع|يمكنني)|لست قادرًا على|لست قادراً على) "
        r"(?:تقديم|المساعدة|مساعدتك|الإجابة|إنشاء|كتابة|توليد|الوصول|التنبؤ|مشاركة|التوصية)",
        r"أنا (?:مجرد |فقط )?(?:نموذج لغوي|ذكاء اصطناعي|برنامج حاسوبي|مساعد افتراضي)",
        r"ليس لدي (?:إمكانية الوصول|القدرة على|آراء|مشاعر|تفضيلات|وصول)",
    ],
    # Persian: "can't" is written with a zero-width non-joiner, a space or nothing (نمی‌توانم).
    "fa": [
        _S + r"به عنوان یک (?:مدل زبانی|هوش مصنوعی|دستیار)" + _WORDS + r"[،,]? (?:من|نمی)",
        r"(?:متاسفم|متأسفم|ببخشید)[،,.]? ?(?:اما |ولی )?(?:من )?نمی(?:\x{200c}| )?توانم",
        r"نمی(?:\x{200c}| )?توانم (?:به شما )?(?:کمک|ارائه|پاسخ)",
        r"من (?:فقط )?یک (?:مدل زبانی|هوش مصنوعی|دستیار مجازی)",
    ],
    "hi": [
        r"(?:एक )?(?:एआई|ai|कृत्रिम बुद्धिमत्ता)(?: भाषा)? मॉडल के रूप में|(?:एक )?भाषा मॉडल के रूप में",
        r"मुझे (?:खेद है|क्षमा करें|मा(?:फ\x{93c}?|\x{95e}) (?:करें|कीजिए))[,।]? ?(?:लेकिन|परंतु|पर|किंतु)? ?मैं",
        r"मैं [^।!?\n]{0,40}?(?:मदद|सहायता|प्रदान|उत्तर|जवाब) नहीं (?:कर|दे) (?:सकता|सकती)",
        r"मैं (?:केवल |सिर्फ |बस |तो )?एक (?:एआई|ai|भाषा मॉडल|कृत्रिम बुद्धिमत्ता)",
    ],
}


def _either_form(pattern: str) -> str:
    """`pattern` with each precomposed Latin, Greek, Cyrillic or Vietnamese letter outside a character
    class also matching its decomposed spelling (NFD: "é" as "e" and U+0301), as text extracted
    from PDFs and some Apple sources is written."""
    out = []
    in_class = False
    escaped = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        elif not in_class and (0xC0 <= ord(ch) < 0x530 or 0x1E00 <= ord(ch) < 0x2000):
            spellings = _spellings(ch)
            if len(spellings) > 1:
                out.append(f"(?:{'|'.join(spellings)})")
                continue
        out.append(ch)
    return "".join(out)


def _spellings(ch: str) -> list[str]:
    """A precomposed letter as text writes it: composed (NFC), decomposed (NFD), and for a letter of
    two marks, one mark composed and the other typed after it. Vietnamese keyboards type "ệ" as "ê"
    and a dot below, "ữ" as "ư" and a tilde: canonically the same letter, other code points."""
    split = unicodedata.normalize("NFD", ch)
    base, marks = split[0], split[1:]
    forms = [ch, split]
    if len(marks) >= 2:
        for i, mark in enumerate(marks):
            forms.append(unicodedata.normalize("NFC", base + marks[:i] + marks[i + 1:]) + mark)
    return list(dict.fromkeys(forms))


def _full_width_ai(patterns: list[str]) -> list[str]:
    """Chinese, Japanese and Korean text may write "AI" in full-width letters (ＡＩ, lower-cased ａｉ)."""
    return [p.replace("(?:ai|", "(?:ai|\uff41\uff49|") for p in patterns]


def _arabic_spellings(pattern: str) -> str:
    """Arabic typed without the hamza on its alif (استطيع for أستطيع), as informal text often is, or with
    the hamza as a mark apart (NFD)."""
    return pattern.replace("\u0623", "(?:\u0623|\u0627\u0654?)").replace("\u0625", "(?:\u0625|\u0627\u0655?)")


def _persian_spellings(pattern: str) -> str:
    """Persian typed with the Arabic yeh and kaf (ي, ك for ی, ک), as Arabic keyboard layouts write them."""
    return pattern.replace("\u06cc", "[\u06cc\u064a]").replace("\u06a9", "[\u06a9\u0643]")


for _lang in ("zh-hans", "zh-hant", "ja", "ko"):
    REFUSAL_PATTERNS[_lang] = _full_width_ai(REFUSAL_PATTERNS[_lang])
REFUSAL_PATTERNS["ar"] = [_arabic_spellings(p) for p in REFUSAL_PATTERNS["ar"]]
REFUSAL_PATTERNS["fa"] = [_persian_spellings(p) for p in REFUSAL_PATTERNS["fa"]]

def _one_regex(languages) -> str:
    return "|".join(f"(?:{_either_form(p)})" for lang in languages for p in REFUSAL_PATTERNS[lang])


# One RE2 pass over each opening per group instead of one per phrase. Two groups: RE2 builds a DFA,
# and all 22 languages in one outgrew its memory budget (6 s for 4,000 openings, against 0.1 s). Every
# phrase of the second group holds a letter of its script, so it is looked for only in openings that
# hold such a letter (`filters._openings`): in English text, few.
LATIN_LANGUAGES = ("en", "es", "pt", "fr", "it", "de", "nl", "pl", "tr", "id", "vi")
REFUSAL_REGEX_LATIN = _one_regex(LATIN_LANGUAGES)
REFUSAL_REGEX_OTHER = _one_regex([lang for lang in REFUSAL_PATTERNS if lang not in LATIN_LANGUAGES])


# Declining an invitation is not refusing a request: "Lo siento, pero no puedo ir a tu fiesta" opens a
# message the answer was asked to write, and shares its first words with "Lo siento, pero no puedo
# ayudarte". Models do not decline to come, attend or be there, so an apology whose "I can't" is
# followed by one of those verbs (or, where the verb ends the clause, has one before the clause ends)
# is left out of the opening before the refusal phrases are looked for (v7). Verbs an assistant uses
# to decline ("participate in", "join in", "go into", "come up with") are not on the lists.
# Gaps are unbounded (to the clause's or sentence's end, within the 300-character opening): RE2 builds
# its DFA from these, and a gap of at most 40 characters in every phrase made it give up and search
# 2,452 openings in 0.55 s.
_C = r"[^.!?。！？؟।\n]*?"  # the rest of the sentence, up to the verb
_W = r"(?: [^ .!?\n,]+){0,3}?"  # a few words ("I can't really make it", "no puedo ir mañana a")
# German and Dutch: "nicht" after the apology, the verb later in the same clause, neither gap crossing
# a comma, so "Leider kann ich Ihnen nicht helfen, wenn Sie nicht kommen" stays a refusal.
_CLAUSE = r"[^.!?,\n]*?"
DECLINE_PATTERNS: dict[str, list[str]] = {
    "en": [r"\b(?:i(?: am|'m) (?:so |very |really |terribly |truly )?sorry|i apologi[sz]e|unfortunately)" + _C
           + r"\bi (?:can't|cannot|can not|won't be able to|will not be able to|am unable to|'m unable to|"
           r"am not able to|'m not able to|couldn't|could not)" + _W
           + r" (?:make it|attend|be there|be present|show up|stop by|drop by|join you|join us|"
           r"come(?: to| over| along| by| tonight| tomorrow| this|[,.!]|$))"],
    "es": [_B + r"(?:lo siento|lo lamento|disculpa|disculpe|perdón|perdona|lamentablemente)" + _C
           + r"no (?:puedo|podré|podremos|voy a poder|me será posible)" + _W
           + r" (?:ir|asistir a|acudir|venir|llegar|estar (?:allí|ahí|presente))" + _E],
    "pt": [_B + r"(?:desculpe|desculpa|sinto muito|lamento|perdão|infelizmente)" + _C
           + r"não (?:posso|poderei|vou poder|consigo|conseguirei)" + _W
           + r" (?:ir|comparecer|vir|chegar|estar (?:aí|lá|presente))" + _E],
    "fr": [_B + r"(?:désolée?|navrée?|excuse[sz]-moi|malheureusement)" + _C
           + r"je ne (?:peux|pourrai|pourrais|vais) pas" + _W
           + r" (?:venir|assister|être (?:là|présente?)|me rendre|passer)" + _E],
    "it": [_B + r"(?:mi dispiace|spiacente|scusa|scusami|mi scuso|purtroppo)" + _C
           + r"non (?:posso|potrò|riesco a|riuscirò a)" + _W + r" (?:venire|esserci|essere presente)" + _E],
    # The verb ends the clause: "ich kann nicht zu deiner Feier kommen".
    "de": [_B + r"(?:es tut mir leid|entschuldigung|entschuldige|leider)[,.]? (?:aber )?" + _CLAUSE
           + r"\bnicht" + _CLAUSE
           + r" (?:kommen|vorbeikommen|mitkommen|dabei sein|da sein|erscheinen)" + _E],
    "nl": [_B + r"(?:het spijt me|sorry|excuses|helaas)[,.]? (?:maar )?" + _CLAUSE + r"\bniet" + _CLAUSE
           + r" (?:komen|langskomen|meekomen|aanwezig zijn|erbij zijn)" + _E],
    "pl": [_B + r"(?:przepraszam|niestety)" + _C + r"nie (?:mogę|będę mógł|będę mogła|dam rady)" + _W
           + r" (?:przyjść|przyjechać|wpaść|być na|być obecn[ya]|dotrzeć)" + _E],
    "ru": [_B + r"(?:извините|простите|к сожалению|мне жаль|прошу прощения)" + _C + r"не (?:смогу|могу)" + _W
           + r" (?:прийти|приехать|зайти|прибыть|присутствовать|быть на|попасть на)" + _E],
    "uk": [_B + r"(?:вибачте|перепрошую|на жаль|мені шкода)" + _C + r"не (?:зможу|можу)" + _W
           + r" (?:прийти|приїхати|зайти|бути присутн|бути на|відвідати)"],
    "id": [_B + r"(?:maaf|sayangnya)" + _C + r"saya tidak (?:dapat|bisa|akan bisa)" + _W
           + r" (?:datang|hadir)" + _E],
    "vi": [_B + r"(?:xin lỗi|rất tiếc)" + _C + r"không thể" + _W + r" (?:đến|tham dự|có mặt)" + _E],
    "zh-hans": [r"(?:抱歉|对不起|很遗憾)[^。！？\n]*?(?:无法|不能|没法|没办法)(?:去|来|参加|出席|赴约|到场)"],
    "zh-hant": [r"(?:抱歉|對不起|很遺憾)[^。！？\n]*?(?:無法|不能|沒法|沒辦法)(?:去|來|參加|出席|赴約|到場)"],
    "ja": [r"申し訳(?:ありません|ございません)が[^。！？\n]*?"
           r"(?:欠席|出席でき|伺えません|伺うことができません|行けません)"],
    "ko": [r"죄송(?:하지만|합니다만)[^.!?\n]*?(?:참석|갈 수 없|가지 못|못 가|못 갈)"],
    "ar": [r"(?:عذرًا|عذراً|عذرا|آسف|أعتذر|للأسف)[^.!?؟\n]*?(?:لا (?:أستطيع|يمكنني)|لن أتمكن من) "
           r"(?:الحضور|المجيء|القدوم)"],
    "he": [r"(?:מצטער|מצטערת|סליחה|לצערי)[^.!?\n]*?(?:לא (?:יכול|יכולה|אוכל)|לא אוכל) (?:להגיע|לבוא)"],
    "fa": [r"(?:متاسفم|متأسفم|ببخشید|متاسفانه|متأسفانه)[^.!?؟\n]*?نمی(?:\x{200c}| )?توانم"
           r"[^.!?؟\n]*?(?:بیایم|حاضر شوم)"],
    "hi": [r"मुझे (?:खेद है|क्षमा करें|माफ़ करें|माफ करें)[^।!?\n]*?नहीं (?:आ|पहुँच|पहुंच) "
           r"(?:सकता|सकती|सकूँगा|सकूंगा|सकूँगी|सकूंगी|पाऊँगा|पाऊंगा|पाऊँगी|पाऊंगी)"],
    "th": [r"(?:ขออภัย|ขอโทษ)[^\n]*?ไม่สามารถ(?:ไป|มา)(?:ร่วม|ได้|งาน)"],
}
DECLINE_PATTERNS["ar"] = [_arabic_spellings(p) for p in DECLINE_PATTERNS["ar"]]
DECLINE_PATTERNS["fa"] = [_persian_spellings(p) for p in DECLINE_PATTERNS["fa"]]
DECLINE_REGEX = "|".join(f"(?:{_either_form(p)})" for patterns in DECLINE_PATTERNS.values() for p in patterns)
