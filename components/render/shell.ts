// Words the program writes into sh scripts it renders.

/** `s` single-quoted for sh: taken as one word, nothing in it expanded. */
export function shellQuote(s: string): string {
    return `'${s.replace(/'/g, "'\\''")}'`;
}
