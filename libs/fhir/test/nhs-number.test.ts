import { isValidNhsNumber, nhsCheckDigit, nhsNumberProblem } from '@cmc/fhir';

/*
 * Worked examples (weights 10, 9, 8, 7, 6, 5, 4, 3, 2 on the first nine digits; check = 11 - (sum mod 11)):
 *
 * 943476591|9  9*10 + 4*9 + 3*8 + 4*7 + 7*6 + 6*5 + 5*4 + 9*3 + 1*2
 *              = 90 + 36 + 24 + 28 + 42 + 30 + 20 + 27 + 2 = 299;  299 mod 11 = 2;  11 - 2 = 9
 * 401023213|7  4*10 + 0*9 + 1*8 + 0*7 + 2*6 + 3*5 + 2*4 + 1*3 + 3*2
 *              = 40 + 0 + 8 + 0 + 12 + 15 + 8 + 3 + 6 = 92;        92 mod 11 = 4;   11 - 4 = 7
 * 123456788|1  1*10 + 2*9 + 3*8 + 4*7 + 5*6 + 6*5 + 7*4 + 8*3 + 8*2
 *              = 10 + 18 + 24 + 28 + 30 + 30 + 28 + 24 + 16 = 208; 208 mod 11 = 10; 11 - 10 = 1
 *
 * Remainder 0 (check 11, written as 0):
 * 987654321|0  9*10 + 8*9 + 7*8 + 6*7 + 5*6 + 4*5 + 3*4 + 2*3 + 1*2
 *              = 90 + 72 + 56 + 42 + 30 + 20 + 12 + 6 + 2 = 330;  330 mod 11 = 0;  11 - 0 = 11 -> 0
 * 900000030|0  9*10 + 3*3 = 99;                                      99 mod 11 = 0;   11 -> 0
 *
 * Remainder 1 (check 10: no valid NHS number starts with these nine digits):
 * 123456789    10 + 18 + 24 + 28 + 30 + 30 + 28 + 24 + 9*2 = 210;    210 mod 11 = 1;  11 - 1 = 10
 * 900000070    9*10 + 7*3 = 111;                                     111 mod 11 = 1;  11 - 1 = 10
 */

describe('isValidNhsNumber', () => {
  it.each(['9434765919', '4010232137', '1234567881', '9876543210', '9000000300'])(
    'when %s carries the check digit of its first nine digits, then it is valid',
    (nhs) => {
      expect(isValidNhsNumber(nhs)).toBe(true);
    },
  );

  it.each(['9434765918', '9434765910', '4010232136', '1234567882', '9876543211'])(
    'when the last digit of %s is not the check digit, then it is invalid',
    (nhs) => {
      expect(isValidNhsNumber(nhs)).toBe(false);
    },
  );

  it('when the first nine digits give check 10, then no last digit makes the number valid', () => {
    for (let last = 0; last <= 9; last++) {
      expect(isValidNhsNumber(`123456789${last}`)).toBe(false);
      expect(isValidNhsNumber(`900000070${last}`)).toBe(false);
    }
  });

  it.each([
    ['with spaces', '943 476 5919'],
    ['with dashes', '943-476-5919'],
    ['of nine digits', '943476591'],
    ['of eleven digits', '94347659190'],
    ['with a letter', '943476591X'],
    ['with surrounding whitespace', ' 9434765919 '],
    ['with a trailing newline', '9434765919\n'],
    ['empty', ''],
    ['of non-ASCII digits', '٩٤٣٤٧٦٥٩١٩'],
  ])('when the value is %s, then it is invalid', (_what, value) => {
    expect(isValidNhsNumber(value)).toBe(false);
  });
});

describe('nhsCheckDigit', () => {
  it('when the weighted sum leaves remainder 2, then the check digit is 9', () => {
    expect(nhsCheckDigit('943476591')).toBe(9);
  });

  it('when the weighted sum leaves other remainders, then the check digit is 11 minus it', () => {
    expect(nhsCheckDigit('401023213')).toBe(7);
    expect(nhsCheckDigit('123456788')).toBe(1);
  });

  it('when the weighted sum leaves remainder 0, then the check digit is 0 (11 -> 0)', () => {
    expect(nhsCheckDigit('987654321')).toBe(0);
    expect(nhsCheckDigit('900000030')).toBe(0);
    expect(nhsCheckDigit('000000000')).toBe(0);
  });

  it('when the weighted sum leaves remainder 1, then there is no check digit', () => {
    expect(nhsCheckDigit('123456789')).toBeUndefined();
    expect(nhsCheckDigit('900000070')).toBeUndefined();
  });

  it.each(['12345678', '1234567890', '12345678a', '1234 5678', ''])('when given %j rather than nine digits, then it throws a RangeError', (value) => {
    expect(() => nhsCheckDigit(value)).toThrow(RangeError);
  });
});

describe('nhsNumberProblem', () => {
  it('when the number is valid, then there is no problem', () => {
    expect(nhsNumberProblem('9434765919')).toBeUndefined();
    expect(nhsNumberProblem('9876543210')).toBeUndefined();
  });

  it('when the check digit is wrong, then it says the modulus-11 check fails', () => {
    expect(nhsNumberProblem('9434765918')).toBe('NHS number fails its modulus-11 check digit');
  });

  it('when the first nine digits have no check digit, then it says so rather than blaming the last digit', () => {
    expect(nhsNumberProblem('1234567890')).toBe('NHS number is not valid: no check digit exists for its first nine digits');
    expect(nhsNumberProblem('9000000701')).toBe('NHS number is not valid: no check digit exists for its first nine digits');
  });

  it.each([
    ['has spaces', '943 476 5919'],
    ['has a letter', '943476591A'],
    ['has nine digits', '943476591'],
    ['has eleven digits', '94347659190'],
    ['is empty', ''],
  ])('when the value %s, then it says ten digits with no spaces are needed', (_what, value) => {
    expect(nhsNumberProblem(value)).toBe('NHS number must be exactly 10 digits, with no spaces');
  });

  it.each([
    ['a number', 9434765919],
    ['undefined', undefined],
    ['null', null],
    ['an array', ['9434765919']],
    ['an object', { value: '9434765919' }],
  ])('when the value is %s rather than a string, then it says a string is needed', (_what, value) => {
    expect(nhsNumberProblem(value)).toBe('NHS number must be a string of 10 digits');
  });
});
