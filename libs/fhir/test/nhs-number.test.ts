import { isValidNhsNumber, nhsCheckDigit, nhsNumberProblem } from '@cmc/fhir';

describe('NHS number validation (modulus 11)', () => {
  it('accepts a number whose last digit is the check digit of the first nine', () => {
    // 9434765919: sum of digits x weights 10..2 is 299; 299 mod 11 = 2; 11 - 2 = 9.
    expect(isValidNhsNumber('9434765919')).toBe(true);
    expect(nhsNumberProblem('9434765919')).toBeUndefined();
  });
});
