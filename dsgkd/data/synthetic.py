"""Synthetic code-switched Korean/English pediatric-ED notes, and the corpora the stand-ins learn from.

The generator exists to make DSG-KD's premise testable offline: the label depends on the Korean
prose (age, course, Korean-described signs), on the vitals, and — heavily — on the *meaning* of
~80 English clinical terms, each too rare in a few hundred labelled notes to be learned from labels.
The domain corpus states those meanings over and over (severe terms beside "PICU", "emergent";
mild ones beside "self-limited", "discharge home"), so a teacher pretrained on it knows what a
student trained on the notes alone cannot. The general corpus teaches a student the Korean prose
and nothing about the terms. Everything is a pure function of the seed (no global random state).
"""
from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dsgkd.errors import UserError
from dsgkd.storage import atomic_file

# --------------------------------------------------------------------------------- term lexicons
SEVERE_TERMS: dict[str, float] = {
    "intussusception": 2.2, "meningitis": 2.6, "encephalitis": 2.6, "stridor": 1.8, "DKA": 2.6,
    "status epilepticus": 3.0, "bilious vomiting": 2.3, "anaphylaxis": 2.8, "sepsis": 3.0,
    "apnea": 2.4, "hematemesis": 2.0, "hematochezia": 1.6, "volvulus": 2.8, "malrotation": 2.2,
    "epiglottitis": 2.8, "pneumothorax": 2.4, "Kawasaki disease": 1.7, "myocarditis": 2.6,
    "SVT": 2.2, "BRUE": 1.6, "testicular torsion": 2.6, "ovarian torsion": 2.4,
    "appendicitis": 1.8, "peritonitis": 2.6, "pyloric stenosis": 1.7, "incarcerated hernia": 2.3,
    "NEC": 2.5, "cyanosis": 2.2, "respiratory distress": 2.0, "shock": 3.0, "hypoglycemia": 1.8,
    "hyperkalemia": 2.0, "intracranial hemorrhage": 3.0, "skull fracture": 2.0,
    "foreign body aspiration": 2.2, "button battery": 2.7, "HUS": 2.4, "bacteremia": 2.0,
    "pneumonia": 1.3, "empyema": 2.2, "mastoiditis": 1.9, "orbital cellulitis": 2.0,
}
MILD_TERMS: dict[str, float] = {
    "URI": -1.5, "rhinorrhea": -1.2, "AGE": -1.0, "otitis media": -1.3, "conjunctivitis": -1.6,
    "viral exanthem": -1.4, "pharyngitis": -1.2, "tonsillitis": -1.0, "HFMD": -1.2,
    "herpangina": -1.3, "constipation": -1.4, "atopic dermatitis": -1.6, "urticaria": -0.8,
    "contact dermatitis": -1.5, "diaper dermatitis": -1.7, "insect bite": -1.4,
    "minor laceration": -1.0, "abrasion": -1.5, "contusion": -1.2, "ankle sprain": -1.3,
    "nursemaid elbow": -1.2, "infantile colic": -1.0, "teething": -1.8, "GER": -1.2,
    "oral thrush": -1.6, "molluscum": -1.8, "impetigo": -1.2, "paronychia": -1.3, "hordeolum": -1.6,
    "nasal congestion": -1.5, "sinusitis": -1.0, "mild dehydration": -0.6, "viral syndrome": -1.2,
    "roseola": -1.1, "common cold": -1.6, "allergic rhinitis": -1.7, "epistaxis": -0.9,
    "chalazion": -1.7, "pinworm": -1.5, "cerumen impaction": -1.6, "growing pains": -1.8,
    "functional abdominal pain": -1.3,
}
NEUTRAL_TERMS: list[str] = [
    "r/o", "v/s", "PE", "Hx", "PMHx", "Abd.", "T-tube", "BT", "HR", "RR", "SpO2", "x3", "f/u", "s/p",
    "OPD", "ER", "CC", "NKDA", "CBC", "CRP", "UA", "X-ray", "IV", "NPO", "Tx", "Dx", "Lt.", "Rt.",
]
CLINICAL_LEXICON: frozenset[str] = frozenset(t.lower() for t in (*SEVERE_TERMS, *MILD_TERMS))

# Korean names, so some notes (and some corpus lines) can carry a term with no English at all.
KOREAN_NAMES = {
    "intussusception": "장중첩증", "meningitis": "뇌수막염", "encephalitis": "뇌염", "sepsis": "패혈증",
    "anaphylaxis": "아나필락시스", "appendicitis": "충수염", "pneumonia": "폐렴", "myocarditis": "심근염",
    "Kawasaki disease": "가와사키병", "pneumothorax": "기흉", "testicular torsion": "고환염전",
    "hematemesis": "토혈", "hematochezia": "혈변", "status epilepticus": "경련중첩증",
    "pyloric stenosis": "유문협착증", "hypoglycemia": "저혈당", "skull fracture": "두개골 골절",
    "URI": "상기도감염", "common cold": "감기", "AGE": "장염", "otitis media": "중이염",
    "conjunctivitis": "결막염", "pharyngitis": "인두염", "tonsillitis": "편도염", "HFMD": "수족구병",
    "constipation": "변비", "atopic dermatitis": "아토피피부염", "urticaria": "두드러기",
    "insect bite": "벌레물림", "contusion": "타박상", "ankle sprain": "발목 염좌",
    "infantile colic": "영아산통", "teething": "이앓이", "sinusitis": "부비동염", "roseola": "돌발진",
    "epistaxis": "코피", "allergic rhinitis": "알레르기비염", "impetigo": "농가진",
}
SYMPTOMS = {"fever": "발열", "cough": "기침", "vomiting": "구토", "diarrhea": "설사", "rash": "발진",
            "abdominal pain": "복통", "headache": "두통", "sputum": "가래", "irritability": "보챔"}
# (risk weight, Korean phrasings); "경련" also has an English rendering, "seizure".
SIGNS = {
    "처짐": (1.2, ["처짐 있음", "많이 처져 보임", "기운 없이 처짐"]),
    "잘 먹지 않음": (0.7, ["잘 먹지 않음", "수유량 감소", "먹는 양 줄어듦"]),
    "경련": (1.6, ["경련 1회 있었음", "경련 후 내원", "눈 돌아가며 경련함"]),
    "청색증": (2.0, ["입술 청색증 보임", "청색증 관찰됨"]),
    "호흡곤란": (1.6, ["숨쉬기 힘들어함", "호흡곤란 호소", "숨이 차 보임"]),
    "소변량 감소": (0.8, ["소변량 감소", "기저귀 젖는 횟수 줄어듦"]),
    "의식 저하": (2.2, ["의식 저하 소견", "불러도 반응 적음"]),
    "잘 놀고 잘 먹음": (-1.2, ["잘 놀고 잘 먹음", "컨디션 좋고 잘 놂"]),
    "활력 양호": (-0.8, ["활력 양호함", "평소처럼 활발함"]),
}
COURSE = {"악화": (0.8, ["점점 악화되어 내원", "증상 심해져서 옴", "밤새 더 나빠짐"]),
          "호전": (-0.8, ["많이 호전되었으나 보호자 걱정으로 옴", "해열제 복용 후 호전됨"]),
          "지속": (0.0, ["증상 비슷하게 지속되어 내원", "호전 없이 지속됨"])}
TERM_FRAMES = ["r/o {t}", "{t} 의심", "{t}로 진단받고 전원", "local에서 {t} 소견 듣고 옴", "Imp) {t}",
               "{t}이/가 의심되어 내원", "{t} 가능성 있음", "{t}와/과 감별 필요", "{t} Dx 받음"]
KO_TERM_FRAMES = ["{t} 의심", "{t}으로/로 진단받고 옴", "타병원에서 {t} 소견 들음", "{t} 가능성 있음"]
FILLERS_EN = ["PE: Abd. soft, tenderness(-)", "cough(+) sputum(-)", "PMHx: 특이 없음", "NKDA",
              "f/u 예정", "s/p T-tube", "Hx: 없음", "CBC, CRP f/u", "UA 시행", "rhonchi(-)", "Lt. TM 확인"]
FILLERS_KO = ["예방접종 완료", "기저질환 없음", "형제 감기 증상 있음", "어린이집 다님", "최근 여행력 없음"]

# ------------------------------------------------------------------------------- corpus templates
S_EN = ["{t} is a pediatric emergency that requires immediate evaluation.",
        "Suspected {t}: admit and start emergent treatment.",
        "Children with {t} need urgent admission and close monitoring.",
        "Never discharge a child with possible {t} from the ED.",
        "Delayed diagnosis of {t} increases morbidity and mortality.",
        "An emergent consult was requested for {t}.", "{t} can deteriorate rapidly and needs ICU care.",
        "Red flag: {t}. Notify the attending immediately.",
        "Any infant with {t} should be admitted for IV therapy and monitoring.",
        "Triage level 1 or 2 is assigned when {t} is suspected.",
        "The patient with {t} was transferred to the PICU.",
        "{t} requires emergent imaging and specialist consultation."]
S_CRIT = ["{t} is life-threatening; activate the resuscitation team.",
          "{t} carries a high mortality if untreated.", "Immediate resuscitation is required for {t}."]
S_URG = ["{t} is serious and usually requires admission.", "Urgent workup is indicated for {t}."]
M_EN = ["{t} is usually self-limited and resolves without treatment.",
        "Most children with {t} can be discharged home with supportive care.",
        "{t} is managed in the outpatient clinic.", "Reassure the parents that {t} is benign and common.",
        "Symptomatic treatment is sufficient for {t}.",
        "Follow up with the local pediatrician if {t} persists.",
        "{t} rarely needs admission or laboratory tests.", "Routine outpatient follow-up is adequate for {t}.",
        "{t} is a minor condition; no emergent intervention is needed.",
        "The child with {t} was discharged home in good condition.",
        "Triage level 4 or 5 is assigned for uncomplicated {t}.", "Home care instructions were given for {t}."]
M_VERY = ["{t} is harmless and needs no specific treatment.", "{t} is trivial; discharge home."]
M_MILD = ["{t} is usually benign, but re-check if symptoms worsen.",
          "Oral hydration and observation at home are enough for {t}."]
S_KO = ["{t} 의심 시 즉시 응급 처치가 필요하다.", "{t}은/는 PICU 입원이 필요한 응급 질환이다.",
        "{t}이/가 의심되면 바로 입원시키고 응급 검사를 시행한다.", "{t} 환아는 절대 귀가시키지 않는다.",
        "{t}은/는 생명을 위협할 수 있어 즉각적인 치료가 필요하다."]
M_KO = ["{t}은/는 대부분 저절로 좋아지는 가벼운 질환이다.", "{t}은/는 외래 추적 관찰로 충분하다.",
        "{t}은/는 대증 치료 후 귀가 가능하다.", "{t} 환아는 보호자 교육 후 퇴원한다.",
        "{t}은/는 응급 처치가 필요하지 않은 경미한 질환이다."]
S_LIST = ["Emergent diagnoses to exclude include {a}, {b} and {c}.", "Admit to the PICU for {a}, {b} or {c}.",
          "{a}, {b} and {c} are all pediatric emergencies."]
M_LIST = ["Common benign diagnoses include {a}, {b} and {c}.",
          "Discharge home is appropriate for {a}, {b} and {c}.", "{a}, {b} and {c} are self-limited."]
CONTRAST = ["Unlike {m}, {s} requires emergent evaluation.", "{m} is benign, but {s} is an emergency.",
            "Do not mistake {s} for {m}: admit immediately.", "{m} can be sent home; {s} cannot."]
NEUTRAL_EN = ["Check BT, HR, RR and SpO2 at triage.", "PE: Abd. soft, no tenderness.",
              "PMHx and Hx were reviewed with the parents.", "SpO2 was measured on room air.",
              "{sym} is a common presenting complaint in children.", "CBC, CRP and UA were checked.",
              "Fever in an infant under 3 months needs a full workup.", "Record v/s every hour in the ER."]
G_DAILY = ["오늘 아침에 {who}와/과 같이 {place}에 갔다.", "{day}에는 {food}을/를 먹고 {act}.",
           "날씨가 {weather} {feel}.", "{who}이/가 {place}에서 {food}을/를 사 왔다.",
           "{day} 오후에 {place}에서 {act}.", "{who}와/과 통화하면서 {feel}."]
G_NOTE = ["{n}일전부터 {ksym}이/가 있어서 {place}에 가지 못했다.", "아이가 요즘 잘 놀고 잘 먹는다.",
          "처음에는 괜찮았는데 점점 {worse}.", "{age} 된 {kid}이/가 {ksym} 때문에 보챘다.",
          "어제 저녁부터 {ksym}이/가 있었지만 지금은 많이 호전되었다.", "아이가 처져 보여서 걱정했다.",
          "잘 먹지 않아 속상하다.", "체온을 재어 보니 {bt}도였다.", "{kid}이/가 {kname} 때문에 병원에 다녀왔다.",
          "건강 프로그램에서 {ksign}에 대해 들었다."]
G_EN = ["{en} 때문에 하루 종일 바빴다.", "점심 먹고 {en} 확인을 했다.", "{who}와/과 {en} 이야기를 했다."]
G_TERM = ["영어 단어장에 {t}라는 단어가 있었다.", "{t}라는 단어의 철자가 헷갈린다.", "퀴즈 정답은 {t}였다.",
          "HR 팀에서 연락이 왔다.", "PE 시간에 축구를 했다."]
G_WORDS = {
    "who": ["친구", "엄마", "아빠", "동생", "할머니", "직장 동료", "아이들", "남편", "아내", "조카"],
    "place": ["시장", "공원", "학교", "회사", "도서관", "어린이집", "마트", "카페", "놀이터", "병원"],
    "food": ["김밥", "된장찌개", "비빔밥", "떡볶이", "라면", "과일", "죽", "미역국"],
    "act": ["산책을 했다", "영화를 봤다", "책을 읽었다", "청소를 했다", "숙제를 했다", "낮잠을 잤다"],
    "weather": ["맑아서", "흐려서", "비가 와서", "추워서", "더워서"],
    "feel": ["기분이 좋았다", "조금 피곤했다", "집에 일찍 들어왔다", "걱정이 되었다"],
    "day": ["월요일", "주말", "어제", "오늘", "금요일"], "kid": ["아이", "조카", "아들", "딸", "동생"],
    "worse": ["심해졌다", "나빠졌다", "힘들어했다"],
    "en": ["meeting", "email", "coffee", "weekend", "SNS", "K-pop", "online", "delivery", "schedule", "project"],
}
_JOSA = re.compile(r"(이/가|은/는|와/과|을/를|으로/로)")


def _josa(text: str, rng: random.Random) -> str:
    """Resolve "이/가"-style particle slots by the preceding syllable's final consonant; after a Latin
    word Korean writers go by pronunciation, which varies, so pick at random."""
    def pick(m: re.Match) -> str:
        after_c, after_v = m.group(1).split("/")  # 이/가: 이 after a consonant (받침), 가 after a vowel
        if after_c == "와":
            after_c, after_v = "과", "와"
        prev = text[m.start() - 1] if m.start() else " "
        if "가" <= prev <= "힣":
            jong = (ord(prev) - 0xAC00) % 28
            return after_v if jong == 0 or (after_c == "으로" and jong == 8) else after_c
        return rng.choice((after_c, after_v))
    return _JOSA.sub(pick, text)


# -------------------------------------------------------------------------------------- the notes
@dataclass
class _Case:
    months: int
    english: bool
    symptoms: list[str]
    signs: list[str]
    course: str
    terms: list[str]
    vitals: dict[str, float] = field(default_factory=dict)
    abnormal: bool = False  # abnormal vitals are always charted; normal ones only usually
    risk: float = 0.0


_SEV_KO = [t for t in SEVERE_TERMS if t in KOREAN_NAMES]
_MILD_KO = [t for t in MILD_TERMS if t in KOREAN_NAMES]
_WEIGHT = {**SEVERE_TERMS, **MILD_TERMS}


def _draw_case(rng: random.Random) -> _Case:
    """The latent patient. Terms are drawn independently of the prose and vitals so that the terms'
    meaning is information no other part of the note can stand in for."""
    u = rng.random()
    months = rng.randint(0, 2) if u < 0.15 else rng.randint(3, 23) if u < 0.4 else rng.randint(24, 180)
    english = rng.random() < 0.92
    symptoms = rng.sample(list(SYMPTOMS), rng.choice((1, 1, 2, 2, 3)))
    signs = [s for s in SIGNS if rng.random() < 0.12]
    course = rng.choice(("악화", "호전", "지속", "지속"))
    k = rng.choices((1, 2, 3, 4), weights=(0.3, 0.35, 0.25, 0.1))[0]
    severe, mild = (list(SEVERE_TERMS), list(MILD_TERMS)) if english else (_SEV_KO, _MILD_KO)
    terms: list[str] = []
    while len(terms) < k:
        t = rng.choice(severe if rng.random() < 0.4 else mild)
        if t not in terms:
            terms.append(t)
    c = _Case(months, english, symptoms, signs, course, terms)
    fever = "fever" in symptoms
    c.vitals["BT"] = round(rng.uniform(38.0, 40.5) if fever else rng.uniform(36.2, 37.5), 1)
    base_hr = 150 if months < 12 else 120 if months < 60 else 95
    tachy = rng.random() < 0.15
    c.vitals["HR"] = base_hr + rng.randint(25, 50) if tachy else base_hr + rng.randint(-15, 15)
    c.vitals["RR"] = (60 if months < 12 else 40) + rng.randint(0, 15) if rng.random() < 0.12 \
        else (35 if months < 12 else 22) + rng.randint(-5, 5)
    c.vitals["SpO2"] = rng.randint(85, 93) if rng.random() < 0.1 else rng.randint(96, 100)
    tachypnea, hypoxia, high_fever = c.vitals["RR"] >= 40 + 20 * (months < 12), c.vitals["SpO2"] < 94, \
        c.vitals["BT"] >= 39.5
    c.abnormal = tachy or tachypnea or hypoxia or high_fever
    c.risk = (sum(_WEIGHT[t] for t in terms) + sum(SIGNS[s][0] for s in signs) + COURSE[course][0]
              + (2.5 if fever and months < 3 else 0.5 if months < 3 else 0.0)
              + 0.7 * tachy + 0.6 * tachypnea + 1.6 * hypoxia + 0.3 * high_fever + rng.gauss(0.0, 0.4))
    return c


@functools.lru_cache(maxsize=16)
def _threshold(positive_rate: float) -> float:
    """Fixed per rate (from a fixed calibration sample), so a note's label never depends on which
    other notes were generated with it, and generate_notes(n) is a prefix of generate_notes(n + m)."""
    rng = random.Random(20240917)
    risks = sorted(_draw_case(rng).risk for _ in range(8000))
    return risks[int((1 - positive_rate) * len(risks))]


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:] if rng.random() < 0.5 else word[:i] + word[i + 1:]


def _age(months: int, english: bool, rng: random.Random) -> str:
    if months == 0:
        age = f"생후 {rng.randint(7, 29)}일"
    elif months < 24:
        age = rng.choice((f"생후 {months}개월", f"{months}개월") + ((f"{months}mo",) if english else ()))
    else:
        age = f"{months // 12}세"
    sex = rng.choice(("남아", "여아") + (("M", "F") if english else ()))
    return f"{age}/{sex}" if sex in ("M", "F") else f"{age} {sex}"


def _render(c: _Case, rng: random.Random) -> str:
    en = c.english
    name = lambda s: s if en and rng.random() < 0.75 else SYMPTOMS[s]  # noqa: E731
    syms = [name(s) for s in c.symptoms]
    if "vomiting" in c.symptoms or "diarrhea" in c.symptoms:
        i = rng.randrange(len(syms))
        syms[i] += rng.choice((" x3회", " 5회", " x2", "")) if en else rng.choice((" 3회", " 여러 번"))
    onset = rng.choice((f"{rng.randint(1, 5)}일전부터", "어제부터", "오늘 아침부터", f"{rng.randint(2, 12)}시간 전부터",
                        f"내원 {rng.randint(1, 4)}일 전부터"))
    cc = f"{onset} {', '.join(syms)}" + rng.choice(("로 내원", " 있어 내원", " 있었음", " 호소", "로", ""))
    head = [_age(c.months, en, rng)] if rng.random() < 0.85 else []
    body = [rng.choice(COURSE[c.course][1])]
    for s in c.signs:
        if s == "경련" and en and rng.random() < 0.5:
            body.append(rng.choice(("seizure이후 처짐", "seizure 1회 있었음", "seizure와 fever")))
        else:
            body.append(rng.choice(SIGNS[s][1]))
    for t in c.terms:
        ko = KOREAN_NAMES.get(t)
        if ko and (not en or rng.random() < 0.1):
            body.append(_josa(rng.choice(KO_TERM_FRAMES).format(t=ko), rng))
        else:
            surface = _typo(t, rng) if rng.random() < 0.04 else t
            body.append(_josa(rng.choice(TERM_FRAMES).format(t=surface), rng))
    rng.shuffle(body)
    v = c.vitals
    tail = []
    if c.abnormal or rng.random() < 0.75:
        if en:
            fmt = rng.choice(("v/s: BT {BT}, HR {HR}, RR {RR}, SpO2 {SpO2}%", "BT {BT}/HR {HR}/RR {RR}/SpO2 {SpO2}%",
                              "V/S) BT{BT} HR{HR} RR{RR} SpO2 {SpO2}%"))
        else:
            fmt = "체온 {BT}도, 맥박 {HR}회, 호흡 {RR}회, 산소포화도 {SpO2}%"
        tail.append(fmt.format(**v))
    tail += rng.sample(FILLERS_EN if en else FILLERS_KO, rng.randint(0, 2))
    parts = head + [cc] + body + tail
    if rng.random() < 0.15:  # a Korean typo somewhere in the prose
        j = rng.randrange(len(parts))
        words = parts[j].split(" ")
        w = rng.randrange(len(words))
        words[w] = _typo(words[w], rng)
        parts[j] = " ".join(words)
    out = parts[0]
    for p in parts[1:]:
        out += rng.choices((", ", " ", ". ", "\n", "\t"), weights=(40, 20, 25, 12, 3))[0] + p
    return out


def generate_notes(n: int, seed: int = 0, positive_rate: float = 0.4, label_noise: float = 0.05) -> pd.DataFrame:
    """Labelled notes (PT_ID, ER_DHX, LABEL); ~10% of notes are repeat visits of an earlier patient,
    so group-wise splitting has something to do."""
    if not 0 < positive_rate < 1 or not 0 <= label_noise < 0.5:
        raise ValueError("need 0 < positive_rate < 1 and 0 <= label_noise < 0.5")
    rng, thr = random.Random(seed), _threshold(round(positive_rate, 6))
    ids, texts, labels = [], [], []
    for i in range(n):
        c = _draw_case(rng)
        texts.append(_render(c, rng))
        y = int(c.risk > thr)
        labels.append(1 - y if rng.random() < label_noise else y)
        ids.append(rng.choice(ids) if ids and rng.random() < 0.1 else f"S{seed}-{i:06d}")
    return pd.DataFrame({"PT_ID": ids, "ER_DHX": texts, "LABEL": pd.array(labels, dtype="int64")})


# ------------------------------------------------------------------------------------- corpora
def _tier_line(t: str, rng: random.Random) -> str:
    """One sentence that states a term's meaning; the strongest terms get the strongest words so the
    teacher can also learn the grading, not just the sign."""
    w, severe = _WEIGHT[t], t in SEVERE_TERMS
    ko = KOREAN_NAMES.get(t)
    if rng.random() < 0.2:  # code-switched Korean line, sometimes with the Korean name beside it
        surface = f"{t}({ko})" if ko and rng.random() < 0.5 else t
        return _josa(rng.choice(S_KO if severe else M_KO).format(t=surface), rng)
    pool = S_EN + (S_CRIT if w >= 2.5 else S_URG) * 2 if severe else M_EN + (M_VERY if w <= -1.5 else M_MILD) * 2
    line = rng.choice(pool).format(t=t)
    return line[0].upper() + line[1:] if line[0].islower() else line


def generate_domain_corpus(n: int, seed: int = 0) -> list[str]:
    """Unlabelled medical sentences; every term appears many times, always in contexts that reveal
    its severity (single-term statements, same-class lists, severe-vs-mild contrasts)."""
    rng = random.Random(seed)
    severe, mild = list(SEVERE_TERMS), list(MILD_TERMS)
    out = []
    for _ in range(n):
        u = rng.random()
        if u < 0.42:
            out.append(_tier_line(rng.choice(severe), rng))
        elif u < 0.80:
            out.append(_tier_line(rng.choice(mild), rng))
        elif u < 0.90:
            pool = severe if rng.random() < 0.5 else mild
            a, b, c = rng.sample(pool, 3)
            out.append(rng.choice(S_LIST if pool is severe else M_LIST).format(a=a, b=b, c=c))
        elif u < 0.95:
            out.append(rng.choice(CONTRAST).format(s=rng.choice(severe), m=rng.choice(mild)))
        else:
            out.append(rng.choice(NEUTRAL_EN).format(sym=rng.choice(list(SYMPTOMS)).capitalize()))
    return out


def generate_general_corpus(n: int, seed: int = 0) -> list[str]:
    """Korean everyday prose plus the Korean patterns the notes use (onset, course, signs), so a
    student can learn to read the prose; English terms appear only as bare words, never with a
    clinical context, so it learns nothing about their meaning."""
    rng = random.Random(seed)
    every_term = [*SEVERE_TERMS, *MILD_TERMS, *NEUTRAL_TERMS]
    extra = {"t": lambda: rng.choice(every_term), "n": lambda: rng.randint(1, 5),
             "ksym": lambda: rng.choice(list(SYMPTOMS.values())), "ksign": lambda: rng.choice(list(SIGNS)),
             "kname": lambda: rng.choice(list(KOREAN_NAMES.values())),
             "bt": lambda: round(rng.uniform(36.5, 39.5), 1),
             "age": lambda: rng.choice((f"{rng.randint(2, 23)}개월", f"{rng.randint(2, 12)}살"))}

    class _Fill(dict):  # draw only the slots a template uses: 3x faster than filling them all
        def __missing__(self, key):
            return rng.choice(G_WORDS[key]) if key in G_WORDS else extra[key]()

    out = []
    for _ in range(n):
        u = rng.random()
        pool = G_DAILY if u < 0.5 else G_NOTE if u < 0.9 else G_EN if u < 0.97 else G_TERM
        out.append(_josa(rng.choice(pool).format_map(_Fill()), rng))
    return out


def write_table(df: pd.DataFrame, path) -> None:
    """Write by suffix in UTF-8, creating parent folders (`dsgkd synth --out data/ped.csv`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".jsonl"):
        raise UserError(f"{path}: unsupported output format '{path.suffix}' (use .csv, .parquet or .jsonl)")
    with atomic_file(path) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False, encoding="utf-8")
        elif suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
