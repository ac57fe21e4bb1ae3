"""Paragraphs in scripts with and without spaces, for the multilingual tests.

Encyclopedia-style paragraphs written for these tests (no third-party text), plus two Tang
poems (public domain, 8th century). Each language has paragraphs on different topics, so
that two of them are never near duplicates of each other.
"""

from __future__ import annotations

PARAGRAPHS: dict[str, list[str]] = {
    "zh": [
        "长江是中国最长的河流，发源于青藏高原的唐古拉山脉，流经青海、西藏、四川、云南、重庆、湖北、湖南、江西、安徽、江苏和上海，"
        "最后注入东海。长江流域面积约一百八十万平方公里，养育了中国三分之一以上的人口，也是中国经济最发达的地区之一。",
        "造纸术是中国古代四大发明之一。东汉时期，蔡伦总结了前人的经验，用树皮、麻头、破布和旧渔网等原料造纸，大大降低了纸张的成本。"
        "此后，造纸术经由朝鲜半岛传入日本，又通过阿拉伯地区传到欧洲，对世界文化的传播产生了深远的影响。",
        "大熊猫是中国特有的哺乳动物，主要生活在四川、陕西和甘肃的山区竹林中。它们每天要花十几个小时进食，几乎只吃竹子。"
        "由于栖息地减少，大熊猫曾一度濒临灭绝。经过多年的保护工作，野生大熊猫的数量已经回升到一千八百多只。",
        "春节是中国最重要的传统节日，时间在农历正月初一。节日前后，人们会打扫房屋、贴春联、放鞭炮，除夕晚上全家人一起吃年夜饭。"
        "许多在外地工作的人都会在春节前返回家乡与家人团聚，因此每年的春运都是世界上规模最大的人口流动之一。",
        "机器学习是人工智能的一个分支，研究如何让计算机从数据中自动学习规律，而不需要人为地编写每一条规则。常见的方法包括监督学习、"
        "无监督学习和强化学习。近年来，基于深度神经网络的模型在图像识别、语音识别和机器翻译等任务上取得了显著的进展。",
        "浮云终日行，游子久不至。三夜频梦君，情亲见君意。告归常局促，苦道来不易。江湖多风波，舟楫恐失坠。出门搔白首，若负平生志。"
        "冠盖满京华，斯人独憔悴。孰云网恢恢，将老身反累。千秋万岁名，寂寞身后事。",
        "圣代无隐者，英灵尽来归。遂令东山客，不得顾采薇。既至金门远，孰云吾道非。江淮度寒食，京洛缝春衣。置酒长安道，同心与我违。"
        "行当浮桂棹，未几拂荆扉。远树带行客，孤城当落晖。吾谋适不用，勿谓知音稀。",
    ],
    "ja": [
        "富士山は静岡県と山梨県にまたがる活火山で、標高は三七七六メートルと日本で最も高い山である。その美しい円錐形の姿は古くから"
        "多くの和歌や絵画の題材となり、二〇一三年には「信仰の対象と芸術の源泉」として世界文化遺産に登録された。",
        "俳句は五・七・五の十七音からなる日本の定型詩で、季節を表す季語を含むことが原則とされている。江戸時代の松尾芭蕉によって"
        "芸術として高められ、現在では日本国内だけでなく、世界中の多くの言語で作られるようになった。",
        "新幹線は日本の主要都市を結ぶ高速鉄道で、一九六四年の東京オリンピックに合わせて東海道新幹線が開業した。最高速度は"
        "時速三百キロメートルを超え、正確な運行と高い安全性で知られている。開業以来、乗客の死亡事故は一度も起きていない。",
        "味噌は大豆に米や麦の麹と塩を加えて発酵させた日本の伝統的な調味料である。地域によって原料や熟成期間が異なり、色や味も"
        "さまざまである。味噌汁は多くの家庭で毎日のように食べられ、日本の食卓に欠かせない料理となっている。",
    ],
    "ko": [
        "한글은 조선의 세종대왕이 1443년에 창제하고 1446년에 훈민정음이라는 이름으로 반포한 문자이다. 자음과 모음을 조합하여 "
        "음절을 만드는 방식으로, 배우기 쉽고 과학적인 문자로 널리 평가받고 있다. 매년 10월 9일은 한글날로 기념된다.",
        "김치는 배추나 무 같은 채소를 소금에 절인 뒤 고춧가루, 마늘, 생강, 젓갈 등으로 양념하여 발효시킨 한국의 전통 음식이다. "
        "지역과 계절에 따라 수백 가지의 종류가 있으며, 겨울을 앞두고 가족과 이웃이 함께 김치를 담그는 김장 문화는 "
        "유네스코 인류무형문화유산에 등재되었다.",
        "제주도는 한국에서 가장 큰 섬으로, 한반도 남쪽 바다에 자리 잡고 있다. 섬 한가운데에는 한국에서 가장 높은 산인 한라산이 "
        "솟아 있으며, 화산 활동으로 만들어진 독특한 지형 덕분에 많은 관광객이 찾는다. 해녀들이 바다에서 해산물을 채취하는 "
        "전통도 유명하다.",
    ],
    "th": [
        "กรุงเทพมหานครเป็นเมืองหลวงและเมืองที่มีประชากรมากที่สุดของประเทศไทย ตั้งอยู่บนฝั่งแม่น้ำเจ้าพระยาใกล้กับอ่าวไทย "
        "เป็นศูนย์กลางทางการเมือง เศรษฐกิจ และวัฒนธรรมของประเทศ มีวัดวาอารามและพระราชวังที่สวยงามจำนวนมาก",
        "ต้มยำกุ้งเป็นอาหารไทยที่มีชื่อเสียงไปทั่วโลก มีรสชาติเปรี้ยวและเผ็ด ปรุงด้วยตะไคร้ ข่า ใบมะกรูด พริก และน้ำมะนาว "
        "นิยมรับประทานร่วมกับข้าวสวย และเป็นหนึ่งในอาหารที่นักท่องเที่ยวต่างชาติอยากลองชิมมากที่สุด",
        "ช้างเป็นสัตว์ประจำชาติของไทย ในอดีตช้างถูกใช้ในการทำสงครามและการขนส่งไม้ในป่าทางภาคเหนือ ปัจจุบันมีการจัดตั้ง"
        "ศูนย์อนุรักษ์ช้างหลายแห่งเพื่อดูแลช้างที่ไม่ได้ใช้งานและให้ความรู้แก่ผู้มาเยือน",
    ],
    "ar": [
        "نهر النيل هو أطول نهر في أفريقيا، ويمر عبر أحد عشر بلداً قبل أن يصب في البحر الأبيض المتوسط. اعتمدت الحضارة المصرية "
        "القديمة على فيضانه السنوي الذي كان يجلب الطمي الخصب إلى الأراضي الزراعية على ضفتيه.",
        "تعد اللغة العربية من أكثر اللغات انتشاراً في العالم، إذ يتحدث بها أكثر من أربعمائة مليون شخص. وهي لغة رسمية في اثنتين "
        "وعشرين دولة، وإحدى اللغات الرسمية الست في منظمة الأمم المتحدة، وتكتب من اليمين إلى اليسار.",
        "الخوارزمي عالم رياضيات وفلك عاش في بغداد في القرن التاسع الميلادي. ألف كتاباً في حساب الجبر والمقابلة، ومن اسمه اشتقت "
        "كلمة الخوارزمية التي تستخدم اليوم في علوم الحاسوب للدلالة على سلسلة من الخطوات لحل مسألة ما.",
    ],
    "en": [
        "The Danube is the second-longest river in Europe. It rises in the Black Forest in Germany and flows "
        "south-east for about 2,850 kilometres through ten countries before it empties into the Black Sea.",
        "Photosynthesis is the process by which green plants and some other organisms use sunlight to make "
        "sugars from carbon dioxide and water, releasing oxygen as a by-product of the reaction.",
    ],
    # Chinese with English terms and code, as in technical answers.
    "zh-en": [
        "在 Python 中，可以使用 list comprehension 来快速生成列表，例如 [x * x for x in range(10)] 会得到前十个数的平方。"
        "与普通的 for 循环相比，这种写法更加简洁，执行速度通常也更快，但过于复杂的表达式会降低代码的可读性。",
        "Git 是目前最流行的分布式版本控制系统。开发者可以用 git commit 保存修改，用 git branch 创建分支，再用 git merge "
        "把不同分支的工作合并起来。每个仓库都保存着完整的历史记录，因此即使没有网络也可以查看和比较以前的版本。",
    ],
}

# Answers as a model writes them (written for these tests by one).
ANSWERS = [
    "要提高睡眠质量，可以从以下几个方面入手：\n\n1. **固定作息**：每天在同一时间上床和起床，周末也尽量保持。\n"
    "2. **减少屏幕时间**：睡前一小时避免使用手机和电脑，蓝光会抑制褪黑素的分泌。\n"
    "3. **控制咖啡因**：下午两点以后不要喝咖啡或浓茶。\n\n如果长期失眠，建议咨询医生。",
    "光合作用是植物利用光能，把二氧化碳和水转化为葡萄糖并释放氧气的过程。它主要发生在叶绿体中，分为光反应和暗反应两个阶段。"
    "光反应产生 ATP 和 NADPH，暗反应则利用它们固定二氧化碳。",
    "東京から京都へは新幹線の「のぞみ」で約二時間十五分です。東京駅から一時間に数本出ており、指定席は事前に予約することを"
    "おすすめします。京都駅に着いたら、市バスや地下鉄で主な観光地へ行けます。",
]

# Refusals and disclaimers as models write them in Chinese, Japanese and Korean.
REFUSALS = [
    "作为一个AI语言模型，我无法提供关于这个人的私人信息。",
    "抱歉，我无法帮助你完成这个请求。",
    "对不起，作为人工智能，我没有个人观点。",
    "申し訳ありませんが、その質問にはお答えできません。",
    "죄송하지만, 저는 AI 언어 모델로서 그 요청을 도와드릴 수 없습니다.",
]


def edited(text: str, every: int = 80) -> str:
    """A near copy: every `every`-th character replaced by another of the same script."""
    chars = list(text)
    for i in range(every // 2, len(chars), every):
        ch = chars[i]
        if not ch.isspace() and not ch.isascii():
            chars[i] = chr(ord(ch) + 1)
        elif ch.isalpha():
            chars[i] = "x" if ch != "x" else "y"
    return "".join(chars)

# Refusals and disclaimers in more languages, written for these tests in the phrasings models use.
REFUSALS_BY_LANGUAGE: dict[str, list[str]] = {
    "zh-hant": ["作為一個AI語言模型，我無法提供這個人的私人資訊。", "抱歉，我無法協助完成這個請求。"],
    # Spaces around a Latin word, and full-width letters, as Chinese text often writes them.
    "zh-hans": ["作为一个 AI 语言模型，这个问题超出了我的能力范围，建议你咨询专业医生。",
                "作为一个ＡＩ语言模型，这个问题超出了我的能力范围。"],
    "ja": ["AIアシスタントとして、個人的な意見を持つことはできません。"],
    "ko": ["그 요청은 도와드릴 수 없습니다. 다른 질문이 있으시면 말씀해 주세요.",
           "저는 그런 정보를 제공할 수 없습니다.", "해당 정보는 제공해 드릴 수 없습니다.",
           "저는 AI로서 개인적인 의견이 없습니다. 다만 일반적인 정보는 알려 드릴 수 있습니다."],
    "es": ["Como modelo de lenguaje de IA, no tengo opiniones personales sobre este tema.",
           "Lo siento, como inteligencia artificial no puedo opinar sobre política.",
           "Lo siento, pero no puedo ayudarte con esa solicitud.",
           "Soy solo una inteligencia artificial y no tengo acceso a internet en tiempo real."],
    "pt": ["Como um modelo de linguagem, não posso fornecer aconselhamento médico.",
           "Desculpe, mas não posso ajudar com isso."],
    "fr": ["En tant qu'IA, je ne peux pas donner d'avis personnel sur cette question.",
           "Je suis désolé, mais je ne peux pas répondre à cette demande.",
           "Je ne suis pas en mesure de vous aider avec cela."],
    "it": ["Come modello di linguaggio, non ho opinioni personali.", "Mi dispiace, ma non posso aiutarti con questa richiesta."],
    "de": ["Als KI-Sprachmodell kann ich keine persönlichen Meinungen äußern.",
           "Es tut mir leid, aber ich kann Ihnen dabei nicht helfen.",
           "Ich bin nur eine KI und habe keinen Zugriff auf aktuelle Nachrichten."],
    "nl": ["Als AI-taalmodel kan ik geen medisch advies geven.", "Het spijt me, maar ik kan je daar niet mee helpen."],
    "pl": ["Jako model językowy, nie mam osobistych opinii.", "Przepraszam, ale nie mogę pomóc w tej sprawie."],
    "ru": ["Как языковая модель ИИ, я не могу выражать личное мнение.",
           "Извините, но я не могу помочь с этим запросом.",
           "У меня нет доступа к интернету в реальном времени."],
    "uk": ["Як мовна модель ШІ, я не можу висловлювати особисту думку.",
           "Вибачте, але я не можу допомогти з цим запитом.", "У мене немає доступу до інтернету в реальному часі."],
    "he": ["כמודל שפה, אין לי דעות אישיות בנושא הזה.", "מצטער, אבל אני לא יכול לעזור בבקשה הזאת."],
    "th": ["ในฐานะโมเดลภาษา AI ฉันไม่มีความคิดเห็นส่วนตัว", "ขออภัย แต่ฉันไม่สามารถช่วยเรื่องนี้ได้"],
    "tr": ["Bir yapay zeka dil modeli olarak kişisel görüşlerim yok.", "Üzgünüm, bu konuda yardımcı olamam."],
    "id": ["Sebagai model bahasa AI, saya tidak memiliki pendapat pribadi.",
           "Maaf, saya tidak dapat membantu permintaan tersebut."],
    "vi": ["Là một mô hình ngôn ngữ AI, tôi không có ý kiến cá nhân.", "Xin lỗi, nhưng tôi không thể giúp bạn việc này.",
           "Tôi là một AI, nên tôi không có cảm xúc."],
    "ar": ["بصفتي نموذجًا لغويًا، لا أستطيع تقديم نصائح طبية.", "عذرًا، لا يمكنني المساعدة في هذا الطلب.",
           "عذرا، لا استطيع المساعدة في هذا الطلب."],  # the hamza left out, as informal text does
    "fa": ["به عنوان یک مدل زبانی، من نظر شخصی ندارم.", "متاسفم، اما نمی‌توانم به این درخواست کمک کنم.",
           "به عنوان يك مدل زباني هوش مصنوعي، نمي‌توانم در اين مورد كمك كنم."],  # Arabic yeh and kaf
    "hi": ["एक एआई भाषा मॉडल के रूप में, मेरी कोई व्यक्तिगत राय नहीं है।", "मुझे खेद है, लेकिन मैं इसमें आपकी मदद नहीं कर सकता।"],
}

# Answers that use the same words without declining: a phrase shared with ordinary writing counts
# only at the start of a sentence and followed by what follows a disclaimer.
NOT_REFUSALS: list[str] = [
    "Tecnologías como inteligencia artificial, blockchain y la nube están cambiando la banca.",
    "Das bezeichnet man als künstliche Intelligenz. Sie lernt aus Daten.",
    "Как искусственный интеллект меняет медицину: три примера из практики.",
    "ChatGPT là một mô hình ngôn ngữ lớn do OpenAI phát triển.",
    "Model ini digunakan sebagai kecerdasan buatan dalam aplikasi, misalnya untuk terjemahan.",
    "Je suis désolé de l'apprendre. Voici quelques conseils pour mieux dormir.",
    "Lo siento mucho por tu pérdida. Aquí tienes algunas ideas para el homenaje.",
    "Leider regnet es morgen. Nimm einen Schirm mit.",
    "Come intelligenza artificiale si intende un insieme di tecniche per far apprendere i computer.",
    "Il sistema è stato progettato come assistente virtuale per gli ospedali.",
    "Uno studio sull'IA: non posso credere a quanto sia migliorata la traduzione automatica.",
    "Jako sztuczna inteligencja określa się systemy, które uczą się z danych.",
    # "Sorry, how ...": an apology followed by "como"/"come" opens a disclaimer only before "AI" or "model".
    "Perdona, como te decía ayer, el tren sale a las ocho.",
    "Desculpe, como posso chegar à estação?",
    "Scusa, come si arriva alla stazione?",
    # Apologies an answer was asked to write, and a character's line: the writer is not declining a request.
    "Hey Sam, I'm so sorry I missed dinner tonight. Work ran late and I completely lost track of time.",
    "(as the woman, walking in) I'm so sorry I'm late! I hope you haven't been waiting too long.",
    "王老师您好：对不起，我昨天没有按时交作业，因为家里临时有事。我今天晚上会补交。",
    "팀장님, 오늘 아침 회의에 늦어서 정말 죄송합니다. 지하철이 지연되었습니다.",
    "이 서비스의 핵심은 AI입니다. 사용자의 질문을 분석해 답을 찾습니다.",
    "Як штучний інтелект змінює медицину: три приклади з практики.",
    "ในฐานะผู้ช่วยศาสตราจารย์ เขาสอนวิชาฟิสิกส์มาสิบปี",
    # refusal v8: the speaker is not an AI, or not the one who cannot (v7 took each of these).
    "Đây là đâu, tôi là ai?",  # "Where is this, who am I?": Vietnamese "ai" is "who"
    "Tôi là ai đó rất bình thường, sống ở Huế.",
    "현재 서비스를 제공할 수 없습니다. 잠시 후 다시 시도해 주세요.",  # "the service cannot be provided now"
    "作为一名人工智能研究员，我每天都在读论文。",
    "我是人工智能专业的学生，明年毕业。",
    "作為一名人工智慧研究員，我每天都在讀論文。",
    "I'm an aide to the senator and I handle her schedule.",
    "डॉक्टर भी उसकी मदद नहीं कर सकता था।",
    "אף אחד לא יכול לעזור לו עכשיו.",
    "بصفتي مساعد باحث في الجامعة، أجمع البيانات كل يوم.",
]
