/** The FHIR identifier system of NHS numbers in England and Wales. */
export const NHS_NUMBER_SYSTEM = 'https://fhir.nhs.uk/Id/nhs-number';

/**
 * Whether `value` is a valid NHS number: exactly ten digits whose last is the modulus-11 check digit of the
 * first nine (weights 10 down to 2; check = 11 - (sum mod 11); 11 means 0; 10 means the number is invalid).
 * Spaces or dashes are not accepted here: callers normalise display forms first.
 */
export function isValidNhsNumber(value: string): boolean {
  if (!/^\d{10}$/.test(value)) return false;
  const check = nhsCheckDigit(value.slice(0, 9));
  return check !== undefined && check === Number(value[9]);
}

/** The check digit for nine leading digits, or undefined when none exists (the remainder gives 10). */
export function nhsCheckDigit(nineDigits: string): number | undefined {
  if (!/^\d{9}$/.test(nineDigits)) throw new RangeError('nhsCheckDigit needs exactly nine digits');
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(nineDigits[i]) * (10 - i);
  const check = 11 - (sum % 11);
  if (check === 11) return 0;
  if (check === 10) return undefined;
  return check;
}

/** Why a value is not a valid NHS number, in words fit for an OperationOutcome; undefined when it is valid. */
export function nhsNumberProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'NHS number must be a string of 10 digits';
  if (!/^\d{10}$/.test(value)) return 'NHS number must be exactly 10 digits, with no spaces';
  if (nhsCheckDigit(value.slice(0, 9)) === undefined) return 'NHS number is not valid: no check digit exists for its first nine digits';
  if (!isValidNhsNumber(value)) return 'NHS number fails its modulus-11 check digit';
  return undefined;
}
