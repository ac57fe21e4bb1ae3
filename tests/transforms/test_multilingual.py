"""Scripts written with and without spaces: units, scripts, shingles, filters and token estimates."""

import re
import unicodedata

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash

from benchmarks.dedup_eval import shingle_sets
from hybridmix.schemas.config import FilterSpec, Origin, QualityConfig
from hybridmix.transforms import minhash as mh
from hybridmix.transforms.filters import TextView, build_filter
from hybridmix.transforms.text import analyze, count_tokens, scripts
from tests.multilingual import NOT_REFUSALS, PARAGRAPHS, REFUSALS, REFUSALS_BY_LANGUAGE, edited

SCRIPT_OF = {"zh": "Hani", "ja": "Jpan", "ko": "Hang", "th": "Thai", "ar": "Arab", "en": "Latn", "zh-en": "Hani"}
NO_SPACES = ("zh", "ja", "ko", "th")


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return len(np.intersect1d(a, b)) / len(np.union1d(a, b))


def test_each_text_gets_the_script_most_of_its_units_are_in():
    for lang, texts in PARAGRAPHS.items():
        assert scripts(analyze(pa.array(texts))).to_pylist() == [SCRIPT_OF[lang]] * len(texts), lang
    # Numbers alone have no script; Han with a little kana stays Chinese, with more it is Japanese.
    assert scripts(analyze(pa.array(["2024 - 12", "", "我们的のです", "我们的会议是明天下午三点の"]))).to_pylist() == [
        "Zyyy", "Zyyy", "Jpan", "Hani"]
    # Korean written with Hanja is Korean: Han with at least 10 % Hangul (more Han than Hangul here).
    hanja = ("大韓民國 憲法 第1條 ① 大韓民國은 民主共和國이다. "
             "② 大韓民國의 主權은 國民에게 있고, 모든 權力은 國民으로부터 나온다.")
    chinese = "我们在首尔吃了饭，朋友说这家店在韩国很有名，大家都叫它맛집。"
    assert scripts(analyze(pa.array([hanja, chinese]))).to_pylist() == ["Hang", "Hani"]


@pytest.mark.parametrize("lang", NO_SPACES)
def test_near_copies_in_scripts_without_spaces_stay_similar(lang):
    """One character in 80 changed: unit 5-grams keep Jaccard near 0.9 (on whole clauses it fell to ~0.5)."""
    for text in PARAGRAPHS[lang]:
        a, b = shingle_sets([text, edited(text)], 5)
        assert _jaccard(a, b) >= 0.8, text[:20]


def test_different_paragraphs_share_almost_no_shingles():
    texts = [t for ts in PARAGRAPHS.values() for t in ts]
    sets = shingle_sets(texts, 5)
    worst = max(_jaccard(sets[i], sets[j]) for i in range(len(sets)) for j in range(i + 1, len(sets)))
    assert worst < 0.05


@pytest.mark.parametrize("lang", ["zh", "ja", "ko", "th", "zh-en"])
def test_datasketch_reproduces_signatures_of_every_script(lang):
    texts = PARAGRAPHS[lang]
    analysis = analyze(pa.array(texts))
    sig = mh.signatures(analysis.word_hashes, analysis.word_offsets, 5, 64, 7)
    for i, text in enumerate(texts):
        ref = MinHash(num_perm=64, seed=7, hashfunc=mh.shingle_hash32)
        ref.update_batch(mh.document_shingles(text, 5))
        assert sig[i].tolist() == ref.hashvalues.tolist()


def _filter(name: str, **params):
    spec = FilterSpec(name=name, params=params)
    return build_filter(QualityConfig(filters=[spec]).filters[0])


def test_refusals_in_chinese_japanese_and_korean_are_caught():
    refusal = _filter("refusal", max_words=100)
    verdict = refusal.evaluate(TextView(pa.array(REFUSALS)))
    assert verdict.failed.all()
    clean = [t for ts in PARAGRAPHS.values() for t in ts]
    assert not refusal.evaluate(TextView(pa.array(clean))).failed.any()


@pytest.mark.parametrize("lang", sorted(REFUSALS_BY_LANGUAGE))
def test_refusals_in_more_languages_are_caught_as_written(lang):
    """Composed or decomposed accents (NFC, NFD) and upper case: the same refusal (v4 knew English
    and Chinese, Japanese and Korean only)."""
    refusal = _filter("refusal", max_words=100)
    texts = REFUSALS_BY_LANGUAGE[lang]
    forms = texts + [t.upper() for t in texts]
    if lang != "ko":  # Hangul in NFD is jamo, which no one writes
        forms += [unicodedata.normalize("NFD", t) for t in texts]
    if lang == "vi":
        typed = [_vietnamese_keyboard(t) for t in texts]
        assert all(t not in (unicodedata.normalize("NFC", t), unicodedata.normalize("NFD", t)) for t in typed)
        forms += typed
    assert refusal.evaluate(TextView(pa.array(forms))).failed.all()


_TONES = "\u0300\u0301\u0303\u0309\u0323"


def _vietnamese_keyboard(text: str) -> str:
    """As Windows' Vietnamese keyboard types it: a vowel composed with its shape mark (â, ê, ô, ă, ơ, ư),
    its tone typed after it as a combining mark ("một" as "mô" + U+0323 + "t")."""
    out = []
    for ch in text:
        split = unicodedata.normalize("NFD", ch)
        tones = "".join(m for m in split[1:] if m in _TONES)
        if len(split) > 2 and tones:
            ch = unicodedata.normalize("NFC", "".join(c for c in split if c not in _TONES)) + tones
        out.append(ch)
    return "".join(out)


def test_a_refusal_quoted_in_a_story_is_not_the_writer_refusing():
    """Quoted speech is skipped in the quotation marks of each language: « », „ “, 「 」, 『 』, (v6)
    German books' » « and Polish „ ”, and (v7) British ‘ ’ and the dash that opens a character's words
    in Russian, Polish, Spanish or French novels."""
    refusal = _filter("refusal", max_words=100)
    quoted = ["«Je suis désolé, mais je ne peux pas venir», dit-elle en souriant.",
              "„Es tut mir leid, aber ich kann dir dabei nicht helfen“, sagte der Nachbar.",
              "「申し訳ありませんが、お答えできません」と彼は言った。",
              "『抱歉，我无法帮助你』他说完就走了。",
              "Der Roboter blieb stehen. »Es tut mir leid, aber ich kann dir nicht helfen«, sagte er.",
              "Robot zatrzymał się. „Przepraszam, ale nie mogę cię wpuścić” – powiedział.",
              "The robot paused. \u2018I\u2019m sorry, but I cannot let you in,\u2019 it said.",
              "Робот остановился.\n\u2014 Извините, но я не могу вас впустить, \u2014 сказал он.",
              "Robot się zatrzymał.\n\u2013 Przepraszam, ale nie mogę cię wpuścić."]
    # An apostrophe is not a closing quote, and what follows a closed quote or the narrator's dash is read.
    said = ["Je suis désolé, mais je ne peux pas répondre à cette demande.", "申し訳ありませんが、お答えできません。",
            "Przepraszam, ale nie mogę pomóc w tej sprawie.", "I\u2019m sorry, but I can\u2019t help with that.",
            "\u2018Fine,\u2019 you said. I\u2019m sorry, but I can\u2019t help with that.",
            "\u2014 Ладно, \u2014 сказал он. Извините, я не могу помочь с этим."]
    assert refusal.evaluate(TextView(pa.array(quoted + said))).failed.tolist() == [False] * 9 + [True] * 6


# A message declining an invitation, and a refusal opening with the same apology (v6 dropped both).
DECLINED = {
    "en": ("Hi Maya, I'm so sorry, but I can't make it to your birthday dinner on Friday. I'll be away for work.",
           "I'm sorry, but I can't help with that request."),
    "es": ("Hola Ana, lo siento, pero no puedo ir a tu fiesta el sábado porque estaré fuera de la ciudad.",
           "Lo siento, pero no puedo ayudarte con esa solicitud."),
    "pt": ("Oi Rita, desculpe, mas não posso ir ao seu aniversário no sábado.",
           "Desculpe, mas não posso ajudar com isso."),
    "fr": ("Chère Claire, je suis désolée, mais je ne peux pas venir à ta fête samedi.",
           "Je suis désolé, mais je ne peux pas répondre à cette demande."),
    "it": ("Cara Giulia, mi dispiace, ma non posso venire alla tua festa sabato.",
           "Mi dispiace, ma non posso aiutarti con questa richiesta."),
    # The verb ends a German clause; a "nicht kommen" in a later clause leaves the refusal a refusal.
    "de": ("Liebe Anna, es tut mir leid, aber ich kann nicht zu deiner Feier kommen, weil ich verreist bin.",
           "Leider kann ich Ihnen nicht helfen, wenn Sie nicht kommen."),
    "nl": ("Beste Sanne, het spijt me, maar ik kan niet naar je feest komen op zaterdag.",
           "Het spijt me, maar ik kan je daar niet mee helpen."),
    "pl": ("Cześć Kasia, przepraszam, ale nie mogę przyjść na twoje urodziny w sobotę.",
           "Przepraszam, ale nie mogę pomóc w tej sprawie."),
    "ru": ("Извините, я не могу прийти на встречу в пятницу: в этот день у меня командировка.",
           "Извините, я не могу помочь с этим запросом."),
    "uk": ("Вибачте, я не можу прийти на зустріч у п'ятницю.", "Вибачте, я не можу допомогти з цим запитом."),
    "zh": ("王老师您好：抱歉，我不能参加明天的家长会，因为要出差。", "抱歉，我无法提供这方面的信息。"),
    "ja": ("お疲れ様です。申し訳ありませんが、明日の会議は体調不良のため欠席させていただきます。",
           "申し訳ありませんが、その質問にはお答えできません。"),
    "ko": ("팀장님, 죄송하지만 내일 회의에는 참석하지 못할 것 같습니다.", "죄송하지만 그 요청은 도와드릴 수 없습니다."),
    "zh-hant": ("抱歉，我不能參加明天的家長會。", "抱歉，我無法提供這方面的資訊。"),
    "id": ("Maaf, saya tidak bisa datang ke pesta ulang tahunmu hari Sabtu.",
           "Maaf, saya tidak dapat membantu dengan permintaan itu."),
    "vi": ("Xin lỗi, tôi không thể đến dự tiệc sinh nhật của bạn vào thứ Bảy.",
           "Xin lỗi, tôi không thể giúp bạn với yêu cầu này."),
    "ar": ("عذرًا، لا أستطيع الحضور إلى الحفلة يوم السبت.", "عذرًا، لا أستطيع المساعدة في هذا الطلب."),
    "he": ("מצטער, לא אוכל להגיע למסיבה ביום שבת.", "מצטער, אני לא יכול לעזור בבקשה הזו."),
    "fa": ("متاسفم، نمی\u200cتوانم به مهمانی شنبه بیایم.", "متاسفم، نمی\u200cتوانم در این مورد کمک کنم."),
    "hi": ("मुझे खेद है, मैं शनिवार को आपकी पार्टी में नहीं आ सकता।", "मुझे खेद है, लेकिन मैं इस अनुरोध में मदद नहीं कर सकता।"),
    "th": ("ขอโทษครับ ผมไม่สามารถไปร่วมงานวันเกิดของคุณได้", "ขออภัยครับ ผมไม่สามารถช่วยเรื่องนี้ได้"),
}


@pytest.mark.parametrize("lang", sorted(DECLINED))
def test_a_declined_invitation_is_not_a_refusal(lang):
    """A model does not decline to come, attend or be there: such an apology opens a message the answer
    was asked to write (v7). The same apology declining a request stays a refusal."""
    refusal = _filter("refusal", max_words=100)
    declined, refused = DECLINED[lang]
    forms = [declined, declined.upper(), unicodedata.normalize("NFD", declined)] if lang != "ko" else [declined]
    assert refusal.evaluate(TextView(pa.array(forms + [refused]))).failed.tolist() == [False] * len(forms) + [True]


def test_an_assistants_own_ways_of_declining_stay_refusals():
    """Verbs an assistant declines with are not an invitation's: "come up with", "participate in"."""
    refusal = _filter("refusal", max_words=100)
    refused = ["I'm sorry, but I cannot come up with a list of insults.",
               "I'm sorry, but I can't participate in discussions about that.",
               "Lo siento, pero no puedo asistirte con eso.",
               "申し訳ありませんが、その議論には参加できません。"]
    assert refusal.evaluate(TextView(pa.array(refused))).failed.all()


def test_sentences_with_a_refusals_words_are_not_refusals():
    """"Como inteligencia artificial", "Als künstliche Intelligenz", "Как искусственный интеллект"
    open ordinary sentences too; only a disclaimer's shape counts (sentence start, then "I" or "not")."""
    refusal = _filter("refusal", max_words=100)
    assert not refusal.evaluate(TextView(pa.array(NOT_REFUSALS))).failed.any()


def test_advice_against_something_is_not_a_refusal():
    """我不会推荐 ("I wouldn't recommend") opens advice; v3 dropped such short answers as refusals."""
    refusal = _filter("refusal", max_words=100)
    advice = "我不会推荐这种做法，因为它的风险很高。更稳妥的办法是先做一个小规模的测试。"
    refused = ["我无法推荐具体的股票。", "我不会提供这类信息。"]
    assert refusal.evaluate(TextView(pa.array([advice] + refused))).failed.tolist() == [False, True, True]


def test_word_shape_rules_judge_only_words_between_spaces():
    """v1 took a whole Chinese clause for one long word and dropped every paragraph of ten clauses."""
    rule = _filter("mean_word_length")
    clean = [t for ts in PARAGRAPHS.values() for t in ts]
    assert not rule.evaluate(TextView(pa.array(clean))).failed.any()
    # Still measured where words are separated by spaces, also inside Chinese text.
    glued = "中文说明 " + " ".join(["supercalifragilisticexpialidocious"] * 12)
    assert rule.evaluate(TextView(pa.array([glued]))).failed.tolist() == [True]


def test_javanese_and_tai_tham_are_read_character_by_character():
    """Both are written without spaces: v2 took a whole sentence for one word, dropped Javanese
    articles of the UDHR as under 3 words and Tai Tham ones for a mean word length of 20+."""
    javanese = "ꦱꦧꦼꦤ꧀ꦲꦸꦮꦺꦴꦁꦏꦭꦲꦶꦂꦫꦏꦺꦏꦤ꧀ꦛꦶꦩꦂꦢꦶꦏꦭꦤ꧀ꦢꦂꦧꦺꦩꦂꦠꦧꦠ꧀ꦭꦤ꧀ꦲꦏ꧀ꦲꦏ꧀ꦏꦁꦥꦝ꧉"
    tai_tham = "ᨾᨶᩩᩔ᩼ᨴ᩠ᨦᩢᩉᩖᩣ᩠ᨿᨠᩮ᩠ᨯᩨᨾᩣᨾᩦᨻ᩠ᨦᩈᩁᩓᩢᨹ᩠ᨿ᩵ᨦᨻ᩠ᨿᨦᨠ᩠ᨶᩢ ᨶᩱᨠᩥᨲ᩠ᨲᩥᩈ᩠ᨠᩢ ᩓᩢᩈᩥᨴ᩠ᨵᩥ"
    view = TextView(pa.array([javanese, tai_tham]))
    letters = [sum(unicodedata.category(c) == "Lo" for c in t) for t in (javanese, tai_tham)]
    assert view.word_counts.tolist() == letters and view.unspaced.all()
    human_drops = [f for f in QualityConfig().filters if Origin.HUMAN in (f.origins or [Origin.HUMAN])
                   and f.mode == "drop"]
    assert len(human_drops) >= 8
    for spec in human_drops:
        assert not build_filter(spec).evaluate(view).failed.any(), spec.name


def test_word_length_counts_a_letter_once_however_it_is_written():
    """v2 measured Vietnamese one character per word longer in NFD than in NFC, vocalized Arabic longer
    than the same words without vowel points, and Malayalam's consonant clusters letter by letter."""
    vi = "Bố tôi là kỹ sư, mẹ tôi là cô giáo. Hè này cả nhà sẽ về quê ở Huế để thăm ông bà."
    plain = "يولد جميع الناس أحرارا متساوين في الكرامة والحقوق وقد وهبوا عقلا وضميرا"
    vocalized = "يُولَدُ جَمِيعُ النَّاسِ أَحْرَارًا مُتَسَاوِينَ فِي الْكَرَامَةِ وَالْحُقُوقِ وَقَدْ وُهِبُوا عَقْلًا وَضَمِيرًا"
    view = TextView(pa.array([vi, unicodedata.normalize("NFD", vi), plain, vocalized, "സ്വാതന്ത്ര്യം"]))
    chars = view.stat("spaced_word_chars").tolist()
    assert chars[0] == chars[1] == len(re.sub(r"[^\w]", "", vi))
    assert chars[2] == chars[3] == len(plain.replace(" ", ""))
    assert chars[4] == len("സ്വാതന്ത്ര്യം") - 4  # its four viramas


def test_default_human_rules_keep_languages_of_short_and_of_long_words():
    """Gopher's 3..10 dropped 4 % of the UDHR's paragraphs in 500 languages (benchmarks/multilingual.py):
    plain Vietnamese sentences of short syllables (as Hawaiian or Tahitian), and Malayalam of long words."""
    rule = build_filter(next(f for f in QualityConfig().filters if f.name == "mean_word_length"))
    vi = ("Tôi đi học ở Hà Nội. Nhà tôi có ba người: bố, mẹ và tôi. Bố tôi là kỹ sư, mẹ tôi là cô giáo. "
          "Hè này cả nhà sẽ về quê ở Huế để thăm ông bà, ăn cơm và đi chơi.")
    ml = ("മനുഷ്യരെല്ലാവരും തുല്യാവകാശങ്ങളോടും അന്തസ്സോടും സ്വാതന്ത്ര്യത്തോടുംകൂടി ജനിച്ചിട്ടുള്ളവരാണ്\u200c. "
          "അന്യോന്യം ഭ്രാതൃഭാവത്തോടെ പെരുമാറുവാനാണ്\u200c മനുഷ്യന്നു വിവേകബുദ്ധിയും മനസ്സാക്ഷിയും "
          "സിദ്ധമായിരിക്കുന്നത്\u200c.")
    gopher = _filter("mean_word_length", min_chars=3, max_chars=10)
    texts = pa.array([vi, unicodedata.normalize("NFD", vi), ml])
    assert gopher.evaluate(TextView(texts)).failed.tolist() == [True, True, True]
    assert rule.evaluate(TextView(texts)).failed.tolist() == [False, False, False]
    junk = [" | ".join("abcdefghijklmnopqrst") + " - * .", " ".join(["aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ="] * 12)]
    assert rule.evaluate(TextView(pa.array(junk))).failed.tolist() == [True, True]


def test_default_human_repetition_rule_judges_texts_of_50_words_or_more():
    """A short formal text repeats its phrases: Sesotho's "everyone has the right to" (UDHR, article 13)."""
    rule = build_filter(next(f for f in QualityConfig().filters
                             if f.name == "repeated_ngrams" and f.origins == [Origin.HUMAN]))
    article = ("Motho e mong le e mong o na le tokelo ya ho tsamaya le ho dula ka bolokolohi ka hara naha yabo.\n"
               "Motho e mong le e mong o na le tokelo ya ho falla naheng efeng kapa efeng, seitana le ya habo, "
               "le ho kgutlela naheng ya habo.")
    spam = " ".join(["Buy cheap watches online today with free shipping and great prices for everyone"] * 5)
    view = TextView(pa.array([article, spam]))
    assert _filter("repeated_ngrams").evaluate(view).failed.tolist() == [True, True]
    assert rule.evaluate(view).failed.tolist() == [False, True]


def test_the_repetition_floor_counts_words_in_text_without_spaces():
    """v2 counted the 50-word floor in characters: Japanese paragraphs of 25 words, whose English
    originals are under the floor, were judged and dropped (10 of 13 drops of the Debian Reference)."""
    rule = build_filter(next(f for f in QualityConfig().filters
                             if f.name == "repeated_ngrams" and f.origins == [Origin.HUMAN]))
    short = "シェルは「~/」を現在のユーザーのホームディレクトリに展開します。シェルは「~foo/」をfooのホームディレクトリに展開します。"
    long = short * 3  # about 60 words: judged, and its repeats are most of it
    view = TextView(pa.array([short, long]))
    assert 50 < view.word_counts[0] < 150 and view.word_equivalents[0] < 50 <= view.word_equivalents[1]
    assert rule.evaluate(view).failed.tolist() == [False, True]


# Sentences that open alike and go on differently: "People in the city of Hanoi ..." in Vietnamese, and
# in Tibetan syllables. Their shared 5-7 syllables are 2-3 words: the rule's 5-word n-grams read as
# syllables covered 38-44 % of the texts with repeats.
_VI_TAILS = ["thích uống cà phê sữa đá vào buổi sáng", "đi làm bằng xe máy mỗi ngày trong tuần",
             "thường dậy sớm để tập thể dục ở hồ", "mua rau tươi ở chợ gần nhà mỗi chiều",
             "hay đọc báo giấy khi ngồi chờ xe buýt", "nghỉ hè cùng gia đình ở biển miền Trung",
             "xem bóng đá trên ti vi tối thứ bảy", "trồng hoa trên ban công của căn hộ nhỏ",
             "học tiếng Anh vào buổi tối sau giờ làm"]
VIETNAMESE = " ".join(f"Người dân ở thành phố Hà Nội {tail}." for tail in _VI_TAILS)
_TIBETAN = ["ཀ", "ཁ", "ག", "ང", "ཅ", "ཆ", "ཇ", "ཉ", "ཏ", "ཐ", "ད", "ན", "པ", "ཕ", "བ", "མ", "ཙ", "ཚ", "ཛ", "ཝ",
            "ཞ", "ཟ", "འ", "ཡ", "ར", "ལ", "ཤ", "ས", "ཧ"]
TIBETAN = "།".join("བོད་ཀྱི་ས་ཁུལ་ནང་" + "་".join(_TIBETAN[(7 * i + k) % 29] + "ི" for k in range(8))
                   for i in range(9)) + "།"


def test_the_word_rules_read_vietnamese_and_tibetan_syllables_two_to_a_word():
    """repeated_ngrams v4 read each syllable as a word: it dropped 31 % of the Dzongkha and 17 % of
    the Vietnamese LibreOffice help pages against 8-12 % of the same pages in Greek, Turkish or Khmer."""
    rule = build_filter(next(f for f in QualityConfig().filters
                             if f.name == "repeated_ngrams" and f.origins == [Origin.HUMAN]))
    named = "In 1968 Nguyễn Văn Thiệu met Trần Văn Hương in Sài Gòn, and the two talked for hours about " \
            "the war, the elections and the economy of the south, which was weakening every month."
    # UDHR article 1 in Yoruba, whose ẹ and ọ are letters of Vietnamese too, and in Romanian (ă): words.
    yoruba = ("Gbogbo ènìyàn ni a bí ní òmìnira; iyì àti ẹ̀tọ́ kọ̀ọ̀kan sì dọ́gba. Wọ́n ní ẹ̀bùn ti làákàyè àti ti "
              "ẹ̀rí-ọkàn, ó sì yẹ kí wọn ó máa hùwà sí ara wọn gẹ́gẹ́ bí ọmọ ìyá.")
    romanian = ("Toate ființele umane se nasc libere și egale în demnitate și în drepturi. Ele sunt înzestrate "
                "cu rațiune și conștiință și trebuie să se comporte unele față de altele în spiritul fraternității.")
    view = TextView(pa.array([VIETNAMESE, TIBETAN, named, PARAGRAPHS["zh"][0], yoruba, romanian]))
    assert view.units_per_word.tolist() == [2, 2, 1, 2, 1, 1]
    assert view.word_counts[0] == 144 and view.word_equivalents[0] == 72
    assert view.repeated_coverage(5)[:2].min() > 0.3 > view.repeated_coverage(5, per_word=True)[:2].max()
    assert rule.evaluate(view).failed.tolist() == [False] * 6


def test_word_count_and_the_refusal_length_count_words_in_text_without_spaces():
    """v1 of word_count and v5 of refusal counted a Chinese character as a word: a Chinese refusal of
    60 words (about 120 characters) was kept where its English translation was dropped, and the
    word ceiling cut Chinese text at half the words it allows English."""
    refusal = _filter("refusal", max_words=100)
    zh = ("作为一个AI语言模型，我无法提供具体的投资建议。"
          + "股票市场的价格受到许多因素的影响，包括经济数据和公司业绩。" * 3)
    en = "As an AI language model, I cannot give specific investment advice. " + " ".join(["word"] * 50)
    view = TextView(pa.array([zh, en]))
    assert view.word_counts[0] >= 100 and view.word_equivalents[0] < 100 and view.word_counts[1] < 100
    assert refusal.evaluate(view).failed.tolist() == [True, True]
    # An English answer followed by its Korean translation: its English words count whole (113 words
    # here; dividing every unit by Korean's 3 characters a word counted 68, and dropped it).
    mixed = en + " " + "저는 인터넷을 검색할 수 없습니다. " * 10
    view = TextView(pa.array([mixed]))
    assert view.unspaced[0] and 105 < view.word_equivalents[0] < 120
    assert not refusal.evaluate(view).failed[0]
    ceiling = _filter("word_count", min_words=3, max_words=100)
    book = "他们沿着河岸走了很久，直到天色渐渐暗了下来。" * 8  # 176 characters, 88 words
    texts = [book, " ".join(["word"] * 101), "好的。", "Yes, fine."]
    assert ceiling.evaluate(TextView(pa.array(texts))).failed.tolist() == [False, True, True, True]


def test_too_short_counts_a_text_alike_whatever_its_unicode_form():
    """v2 counted code points: "Hà Nội là thủ đô." was 17 characters in NFC and 22 in NFD."""
    too_short = _filter("too_short")
    forms = [unicodedata.normalize(f, t) for t in ("Hà Nội là thủ đô.", "서울입니다") for f in ("NFC", "NFD")]
    forms.append("Hà N\u00f4\u0323i là thủ đô.")  # as a Vietnamese keyboard types ộ
    assert too_short.evaluate(TextView(pa.array(forms))).failed.tolist() == [True] * 5
    longer = "Hà Nội là thủ đô của Việt Nam."
    assert not too_short.evaluate(TextView(pa.array([longer, unicodedata.normalize("NFD", longer)]))).failed.any()


def test_the_quality_score_is_the_same_whatever_the_unicode_form():
    """The scorer's statistics count code points: the same Korean answer in NFD (jamo) scored 0.64
    against 0.35 in NFC. Each text is measured as NFC writes it."""
    from hybridmix.transforms.scorer import load_scorer

    ko = "녹차는 70~80도의 물에 2~3분 우려 마시는 것이 좋습니다. 너무 뜨거운 물을 쓰면 쓴맛이 강해집니다."
    vi = "Trà xanh nên pha với nước khoảng 80 độ trong hai đến ba phút; một ấm trà có thể pha lại hai lần."
    ja = "緑茶は七十度から八十度のお湯で二分ほど淹れます。熱すぎるお湯では苦味が出ます。"
    forms = [unicodedata.normalize(f, t) for t in (ko, vi, ja) for f in ("NFC", "NFD")]
    forms.append(vi.replace("ộ", "ô\u0323").replace("ệ", "ê\u0323"))  # as a Vietnamese keyboard types them
    # An accent NFC has no composed letter for (x with an acute) leaves the text as it is.
    forms += ["The variable x\u0301 is the derivative of x. " * 3, "The variable x\u0301 is the derivative of x. " * 3]
    assert len(set(forms)) == 8
    scorer = load_scorer(None)
    scores = scorer.score(TextView(pa.array(forms))).tolist()
    assert scores[0] == scores[1] and scores[2] == scores[3] == scores[6] and scores[4] == scores[5]
    assert scores[7] == scores[8] == scorer.score(TextView(pa.array(forms[7:8]))).tolist()[0]


def test_an_answer_ending_in_any_emoji_is_finished():
    """v4 knew two emoji blocks: an answer ending in a flag, a star, a clock or a keycap was "truncated"."""
    truncated = _filter("truncated", min_words=10)
    body = "Here is the plan for the trip, with the trains, the hotels and the museums we talked about"
    ends = ["! \U0001F1EF\U0001F1F5", "! \u2b50", "! \u23f0", "! 1\ufe0f\u20e3", "! \U0001F60A", "\u22ef\u22ef", " ~",
            " of the"]
    verdict = truncated.evaluate(TextView(pa.array([body + e for e in ends]))).failed.tolist()
    assert verdict == [False] * 7 + [True]


def test_cut_off_answers_end_without_ideographic_full_stop():
    truncated = _filter("truncated", min_words=10)
    done = PARAGRAPHS["zh"][0]
    cut = done[:-8]
    assert truncated.evaluate(TextView(pa.array([done, cut]))).failed.tolist() == [False, True]


def test_scripts_that_end_sentences_without_a_mark_are_not_called_cut_off():
    """v2 flagged every finished Thai answer of 40+ characters: Thai and Lao end a sentence with no mark."""
    truncated = _filter("truncated", min_words=10)
    thai = "ประเทศไทยมีอาหารหลากหลายชนิด อาหารไทยมีรสชาติจัดจ้าน ทั้งเปรี้ยว หวาน เค็ม และเผ็ด"
    lao = "ປະເທດລາວມີແມ່ນ້ຳຂອງໄຫຼຜ່ານຫຼາຍແຂວງ ແລະ ມີພູເຂົາຫຼາຍແຫ່ງທີ່ສວຍງາມ"
    khmer = "ប្រទេសកម្ពុជាមានប្រាសាទអង្គរវត្តដែលល្បីល្បាញទូទាំងពិភពលោក។"
    hindi = " ".join(["भारत एक विशाल देश है जहाँ अनेक भाषाएँ बोली जाती हैं"] * 2) + "॥"
    cut = " ".join(["The northern tower was rebuilt after the fire"] * 3) + " of"
    assert truncated.evaluate(TextView(pa.array([thai, lao, khmer, hindi, cut]))).failed.tolist() == [
        False, False, False, False, True]


# Genesis 1:1-2, unpointed; the second verse without its final sof pasuq.
GENESIS = "בראשית ברא אלהים את השמים ואת הארץ\u05c3 והארץ היתה תהו ובהו וחשך על פני תהום ורוח אלהים מרחפת על פני המים"


def test_closing_marks_of_more_scripts_and_invisible_trailers_end_an_answer():
    """truncated v4: Armenian, Greek, French and German quotes, full-width colons, an emoji with its
    variation selector, and a zero-width space or direction mark after the last full stop."""
    truncated = _filter("truncated", min_words=10)
    body = "The northern tower was rebuilt after the fire and the city grew around it for a century"
    done = [
        "Մարդիկ ծնվում են ազատ և հավասար իրենց արժանապատվությամբ ու իրավունքներով, նրանք ունեն բանականություն և խիղճ։",
        "Γιατί όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι στην αξιοπρέπεια και τα δικαιώματα;",
        "Il a dit : « Les êtres humains naissent libres et égaux en dignité et en droits »",
        "Er sagte: „Alle Menschen sind frei und gleich an Würde und Rechten geboren und sollen einander helfen“",
        "安装步骤如下，请先确认系统版本和网络连接，然后按照顺序执行以下命令：",
        body + " ❤\ufe0f",
        body + ".\u200b",
        body + ".\u200f",
        GENESIS + "\u05c3",  # v6: Hebrew's sof pasuq ends a verse
    ]
    cut = [body + " of", body + " «", "安装步骤如下，请先确认系统版本和网络连接，然后按照顺序执行以下命令，并且",
           GENESIS]
    verdict = truncated.evaluate(TextView(pa.array(done + cut))).failed.tolist()
    assert verdict == [False] * len(done) + [True] * len(cut)


def test_token_estimate_is_per_script():
    zh = "我们今天学习机器翻译。"  # 10 Han characters, one full stop
    en = "We study machine translation today."
    est = count_tokens(pa.array([zh, en, ""]), "estimate").tolist()
    assert est[0] == round(10 * 1.0 + 0.82)  # about one token per Han character
    assert 6 <= est[1] <= 8  # five words and a full stop: 6 to 7 BPE tokens in the tokenizers measured
    assert est[2] == 0
    # The old default counted the Chinese sentence as one word (plus its full stop).
    assert count_tokens(pa.array([zh]), "whitespace").tolist() == [1]


# Article 1 of the UDHR (its first sentence in Amharic, article 2) and the geometric mean of what
# cl100k_base, o200k_base and DeepSeek-V3 count for it (benchmarks/multilingual.py measured them).
UDHR_TOKENS = [
    ("सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता और समानता प्राप्त है । उन्हें बुद्धि और अन्तरात्मा "
     "की देन प्राप्त है और परस्पर उन्हें भाईचारे के भाव से बर्ताव करना चाहिए ।", 96.7),
    ("Όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι στην αξιοπρέπεια και τα δικαιώματα. Είναι προικισμένοι με "
     "λογική και συνείδηση, και οφείλουν να συμπεριφέρονται μεταξύ τους με πνεύμα αδελφοσύνης.", 104.0),
    ("ყოველი ადამიანი იბადება თავისუფალი და თანასწორი თავისი ღირსებითა და უფლებებით. მათ მინიჭებული აქვთ გონება "
     "და სინდისი და ერთმანეთის მიმართ უნდა ექცეოდნენ ძმობის სულისკვეთებით.", 126.8),
    ("እያንዳንዱ፡ሰው፡የዘር፡የቀለም፡የጾታ፡የቋንቋ፡የሃይማኖት፡የፖለቲካ፡ወይም፡የሌላ፡ዓይነት፡አስተሳሰብ፡የብሔራዊ፡ወይም፡የኀብረተሰብ፡ታሪክ፡"
     "የሀብት፡የትውልድ፡ወይም፡የሌላ፡ደረጃ፡ልዩነት፡ሳይኖሩ፡በዚሁ፡ውሳኔ፡የተዘረዘሩት፡መብቶችንና፡ነጻነቶች፡ሁሉ፡እንዲከበሩለት፡ይገባል።", 383.9),
    ("Ꮒꭶꮣ ꭰꮒᏼꮻ ꭴꮎꮥꮕꭲ ꭴꮎꮪꮣꮄꮣ ꭰꮄ ꭱꮷꮃꭽꮙ ꮎꭲ ꭰꮲꮙꮩꮧ ꭰꮄ ꭴꮒꮂ ꭲᏻꮎꮫꮧꭲ. Ꮎꮝꭹꮎꮓ ꭴꮅꮝꭺꮈꮤꮕꭹ ꭴꮰꮿꮝꮧ ꮕᏸꮅꮫꭹ ꭰꮄ ꭰꮣꮕꮦꮯꮣꮝꮧ ꭰꮄ ꭱꮅꮝꮧ "
     "ꮟᏼꮻꭽ ꮒꮪꮎꮣꮫꮎꮥꭼꭹ ꮎ ꮧꮎꮣꮕꮯ ꭰꮣꮕꮩ ꭼꮧ.", 323.0),
    # Oriya took Bengali's weight (0.41 of its tokens); Hebrew's vowel points and cantillation counted
    # about half what a tokenizer spends on them (Genesis 1:1-2, pointed: 0.63).
    ("ସମସ୍ତ ମନୁଷ୍ୟ ଜନ୍ମକାଳରୁ ସ୍ୱାଧୀନ ଏବଂ ମର୍ଯ୍ୟାଦା ଓ ଅଧିକାରରେ ସମାନ। ସେମାନଙ୍କଠାରେ ବୁଦ୍ଧି ଓ ବିବେକ ଅଛି ଏବଂ ସେମାନେ "
     "ପରସ୍ପର ପ୍ରତି ଭ୍ରାତୃଭାବ ପୋଷଣ କରିବା ଉଚିତ।", 201.5),
    ("בְּרֵאשִׁ֖ית בָּרָ֣א אֱלֹהִ֑ים אֵ֥ת הַשָּׁמַ֖יִם וְאֵ֥ת הָאָֽרֶץ׃ וְהָאָ֗רֶץ הָיְתָ֥ה תֹ֙הוּ֙ וָבֹ֔הוּ וְחֹ֖שֶׁךְ "
     "עַל־פְּנֵ֣י תְה֑וֹם וְר֣וּחַ אֱלֹהִ֔ים מְרַחֶ֖פֶת עַל־פְּנֵ֥י הַמָּֽיִם׃", 203.4),
]


# Article 1 of the UDHR in languages of the Latin and Cyrillic scripts beyond English and Russian, and
# the geometric mean of what cl100k_base, o200k_base and DeepSeek-V3 count for it.
UDHR_WORDS_TOKENS = [
    ("Bütün insanlar hür, haysiyet ve haklar bakımından eşit doğarlar. Akıl ve vicdana sahiptirler ve "
     "birbirlerine karşı kardeşlik zihniyeti ile hareket etmelidirler.", 56.1),
    ("Watu wote wamezaliwa huru, hadhi na haki zao ni sawa. Wote wamejaliwa akili na dhamiri, hivyo yapasa "
     "watendeane kindugu.", 43.9),
    ("Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und Gewissen "
     "begabt und sollen einander im Geist der Brüderlichkeit begegnen.", 41.6),
    ("Kaikki ihmiset syntyvät vapaina ja tasavertaisina arvoltaan ja oikeuksiltaan. Heille on annettu järki "
     "ja omatunto, ja heidän on toimittava toisiaan kohtaan veljeyden hengessä.", 60.4),
    ("Всі люди народжуються вільними і рівними у своїй гідності та правах. Вони наділені розумом і совістю "
     "і повинні діяти у відношенні один до одного в дусі братерства.", 68.4),
]


@pytest.mark.parametrize("text, tokens", UDHR_WORDS_TOKENS,
                         ids=["turkish", "swahili", "german", "finnish", "ukrainian"])
def test_token_estimate_of_words_the_tokenizers_split(text, tokens):
    """One weight per letter served English: Turkish and Swahili words of the same length as English ones
    take two to four tokens where an English word takes one, and were counted at 0.6 of their tokens."""
    assert count_tokens(pa.array([text]), "estimate").tolist()[0] == pytest.approx(tokens, rel=0.2)


def test_known_word_filter_holds_the_words_it_was_built_from():
    from hybridmix.transforms import kernels

    texts = pa.array(["because", "Declaration", "человек", "qzxvbnmkwj", "übermorgenfrühstück"])
    hashes = analyze(texts).word_hashes
    shipped = kernels.known_words()
    assert [bool(kernels._is_known(shipped, np.uint64(h))) for h in hashes] == [True, True, True, False, False]
    built = kernels.known_filter(hashes[3:])
    assert [bool(kernels._is_known(built, np.uint64(h))) for h in hashes] == [False, False, False, True, True]
    # A known word counts one token, an unknown one of the same length more.
    assert count_tokens(pa.array(["because", "bekausa"]), "estimate").tolist() == [1, 3]


def test_letters_of_no_script_are_not_counted_as_an_unknown_script():
    """IPA's stress mark, math letters and letterlike symbols belong to no script (as digits): counted
    with the weights of an unnamed script (Cherokee, Vai, ...) /ˈpɪkəl/ took 17 tokens."""
    from hybridmix.transforms import kernels

    table = kernels.script_table()
    assert [kernels.SCRIPTS[table[ord(c)]] for c in "ˈː𝑥ℓℝªa"] == ["Zyyy"] * 6 + ["Latn"]
    assert count_tokens(pa.array(["/ˈpɪkəl/"]), "estimate").tolist()[0] <= 8


@pytest.mark.parametrize("text, tokens", UDHR_TOKENS,
                         ids=["hindi", "greek", "georgian", "amharic", "cherokee", "oriya", "pointed-hebrew"])
def test_token_estimate_of_scripts_beyond_the_nine_languages(text, tokens):
    """Every script but Cyrillic once took Cyrillic's weights: Hindi was counted at 0.75 of its tokens,
    Georgian at 0.50, Amharic at 0.22 and Cherokee (a script not listed) at 0.16."""
    assert count_tokens(pa.array([text]), "estimate").tolist()[0] == pytest.approx(tokens, rel=0.15)
