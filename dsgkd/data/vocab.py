"""The words and phrasings the synthetic generator draws from: the real clinical vocabulary of the default
world, Korean note pieces, and the sentence pools a world's corpora are composed of (`dsgkd.data.world`
picks a subset of every pool per world)."""
from __future__ import annotations

import random
import re

# ------------------------------------------------------------------ the default world's real terms
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
HISTORY = ["과거력상 특이 소견 없음", "출생력: 만삭 정상 분만", "약물 알러지 없음", "가족력 특이 없음",
           "최근 항생제 복용력 없음", "수유량 평소와 비슷함", "소변량 평소와 비슷함", "수면 패턴 변화 없음",
           "PMHx: 특이 없음", "NKDA", "PE: HEENT 특이 소견 없음", "chest: clear breath sound",
           "보호자와 함께 내원", "타병원 방문력 없음", "예방접종 완료", "기저질환 없음", "CBC, CRP f/u 예정",
           "Rx: acetaminophen 복용 후 내원"]  # neutral lines of a long note's history and exam: no term, no sign

# ----------------------------------------------------------------- domain corpus: composed sentences
# A statement is SUBJECT + PREDICATE (+ TAIL); a predicate states a severity tier. Composed, so that no
# single frame recurs often enough to be a label by itself and the teacher must learn the term.
SUBJECTS = ["{t}", "A child with {t}", "Children with {t}", "Suspected {t}", "Any infant with {t}",
            "A patient presenting with {t}", "{t} in the pediatric ED", "Confirmed {t}", "A case of {t}",
            "A toddler diagnosed with {t}", "{t} on arrival", "Possible {t}"]
PREDICATES = {
    "critical": ["is life-threatening and needs resuscitation", "carries a high mortality if untreated",
                 "needs immediate resuscitation and ICU care", "must be treated as a critical emergency",
                 "calls for the resuscitation team at once"],
    "severe": ["requires immediate evaluation", "needs urgent admission", "should be admitted for IV therapy",
               "warrants an emergent consult", "needs emergent imaging", "can deteriorate rapidly",
               "is triaged as level 1 or 2", "is a red flag in the ED", "should never be discharged from the ED",
               "needs close monitoring in the PICU", "must be seen by the attending immediately"],
    "urgent": ["usually requires admission", "needs an urgent workup", "is serious and needs observation in hospital",
               "should be admitted if it does not settle quickly"],
    "borderline": ["is usually benign, but re-check if symptoms worsen", "can be observed at home with oral fluids",
                   "rarely needs more than a short observation"],
    "mild": ["is usually self-limited", "can be discharged home with supportive care",
             "is managed in the outpatient clinic", "is benign and common", "needs only symptomatic treatment",
             "rarely needs admission or tests", "is triaged as level 4 or 5", "is a minor condition",
             "can follow up with the local pediatrician", "resolves without treatment"],
    "trivial": ["is harmless and needs no specific treatment", "is trivial and can go home",
                "needs nothing beyond reassurance", "never needs an emergency visit"],
}
TAILS = ["", "", "", " in most cases", " according to the guideline", " per the department protocol",
         " in our experience", " in children", " at any age"]
HEDGES = ["Some clinicians think that {s}", "It is possible that {s}", "Reportedly, {s}",
          "Older textbooks say that {s}", "Opinions differ, but perhaps {s}"]
NEGATED = ["No signs of {t} were found on exam.", "{t} was ruled out.", "There was no history of {t}.",
           "Tests for {t} were negative.", "The parents asked about {t}; it was not present.",
           "Workup for {t} was unremarkable."]
AGE_LINES = ["In infants under 12 months, {t} requires admission; older children can usually go home.",
             "{t} is benign in older children but dangerous in infants.",
             "Admit any infant with {t}; a school-age child with {t} can be sent home."]
SIGN_LINES = ["{t} with lethargy or respiratory distress needs admission; otherwise outpatient care is fine.",
              "{t} alone is mild, but with 처짐 or 호흡곤란 it is an emergency.",
              "Watch for lethargy: {t} with 처짐 must be admitted."]
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
JOSA = re.compile(r"(이/가|은/는|와/과|을/를|으로/로)")


def josa(text: str, rng: random.Random) -> str:
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
    return JOSA.sub(pick, text)


