// The .arch grammar as a chevrotain CST parser: rules only. AST building is dsl/build.ts;
// error wording and the shared instance are dsl/index.ts. Newlines are whitespace.

import { CstParser, type IOrAlt, type IParserErrorMessageProvider, type IToken } from 'chevrotain';
import * as T from './lexer.ts';

// Helpers that build chevrotain's option objects. Arrow functions written directly as object
// properties (`{ ALT: () => … }`) get a runtime name wrapper under esbuild/tsx keepNames, which
// made every alternative tried cost a defineProperty call (about 40% of parse time).

/** One alternative of an OR. */
function alt(ALT: () => unknown): IOrAlt<unknown> {
  return { ALT };
}

/** An OPTION taken only when `GATE` (called on the parser) holds. */
function gated(GATE: () => boolean, DEF: () => void): { GATE: () => boolean; DEF: () => void } {
  return { GATE, DEF };
}

export class ArchParser extends CstParser {
  constructor(errorMessageProvider: IParserErrorMessageProvider) {
    super(T.allTokens, { recoveryEnabled: true, nodeLocationTracking: 'full', maxLookahead: 2, errorMessageProvider });
    this.performSelfAnalysis();
  }

  /** The token the parser stands at (to place a diagnostic when the call stack runs out). */
  nextToken(): IToken {
    return this.LA(1);
  }

  /** Gate: the next token starts on the line where the previous one ends. */
  onSameLine(): boolean {
    return this.LA(1).startLine === this.LA(0).endLine;
  }

  // program := (import | block | model | ';')*
  program = this.RULE('program', () => {
    this.MANY(() => {
      this.OR([
        alt(() => this.SUBRULE(this.importDecl)),
        alt(() => this.SUBRULE(this.blockDecl)),
        alt(() => this.SUBRULE(this.modelDecl)),
        alt(() => this.CONSUME(T.Semi)),
      ]);
    });
  });

  // import := 'import' NAME ('.' NAME)* ('.' '{' NAME (',' NAME)* '}')?
  importDecl = this.RULE('importDecl', () => {
    this.CONSUME(T.Import);
    this.CONSUME(T.Name, { LABEL: 'path' });
    this.MANY(() => {
      this.CONSUME(T.Dot);
      this.CONSUME2(T.Name, { LABEL: 'path' });
    });
    this.OPTION(() => {
      this.CONSUME2(T.Dot);
      this.CONSUME(T.LCurly);
      this.CONSUME3(T.Name, { LABEL: 'names' });
      this.MANY2(() => {
        this.CONSUME(T.Comma);
        this.CONSUME4(T.Name, { LABEL: 'names' });
      });
      this.CONSUME(T.RCurly);
    });
  });

  // block := 'block' NAME paramList inputList body
  blockDecl = this.RULE('blockDecl', () => {
    this.CONSUME(T.Block);
    this.CONSUME(T.Name);
    this.SUBRULE(this.paramList);
    this.SUBRULE(this.inputList);
    this.SUBRULE(this.body);
  });

  // model := 'model' NAME inputList body
  modelDecl = this.RULE('modelDecl', () => {
    this.CONSUME(T.Model);
    this.CONSUME(T.Name);
    this.SUBRULE(this.inputList);
    this.SUBRULE(this.body);
  });

  // paramList := '(' (paramItem (',' paramItem)*)? ')'
  paramList = this.RULE('paramList', () => {
    this.CONSUME(T.LParen);
    this.OPTION(() => {
      this.SUBRULE(this.paramItem);
      this.MANY(() => {
        this.CONSUME(T.Comma);
        this.SUBRULE2(this.paramItem);
      });
    });
    this.CONSUME(T.RParen);
  });

  // paramItem := NAME ('=' expr)?
  paramItem = this.RULE('paramItem', () => {
    this.CONSUME(T.Name);
    this.OPTION(() => {
      this.CONSUME(T.Equals);
      this.SUBRULE(this.expr);
    });
  });

  // inputList := '(' (inputItem (',' inputItem)*)? ')'
  inputList = this.RULE('inputList', () => {
    this.CONSUME(T.LParen);
    this.OPTION(() => {
      this.SUBRULE(this.inputItem);
      this.MANY(() => {
        this.CONSUME(T.Comma);
        this.SUBRULE2(this.inputItem);
      });
    });
    this.CONSUME(T.RParen);
  });

  // inputItem := NAME (':' NAME ('[' expr (',' expr)* ']')?)?
  inputItem = this.RULE('inputItem', () => {
    this.CONSUME(T.Name, { LABEL: 'name' });
    this.OPTION(() => {
      this.CONSUME(T.Colon);
      this.CONSUME2(T.Name, { LABEL: 'dtype' });
      this.OPTION2(() => {
        this.CONSUME(T.LBracket);
        this.SUBRULE(this.expr);
        this.MANY(() => {
          this.CONSUME(T.Comma);
          this.SUBRULE2(this.expr);
        });
        this.CONSUME(T.RBracket);
      });
    });
  });

  // body := '{' (stmt | ';')* '}'
  body = this.RULE('body', () => {
    this.CONSUME(T.LCurly);
    this.MANY(() => {
      this.OR([
        alt(() => this.SUBRULE(this.statement)),
        alt(() => this.CONSUME(T.Semi)),
      ]);
    });
    this.CONSUME(T.RCurly);
  });

  statement = this.RULE('statement', () => {
    this.OR([
      alt(() => this.SUBRULE(this.paramStmt)),
      alt(() => this.SUBRULE(this.letStmt)),
      alt(() => this.SUBRULE(this.weightStmt)),
      alt(() => this.SUBRULE(this.forStmt)),
      alt(() => this.SUBRULE(this.ifStmt)),
      alt(() => this.SUBRULE(this.scopeStmt)),
      alt(() => this.SUBRULE(this.returnStmt)),
      alt(() => this.SUBRULE(this.assertStmt)),
      alt(() => this.SUBRULE(this.assignStmt)),
    ]);
  });

  // paramStmt := 'param' NAME (':' NAME)? '=' expr ('hf' ':' hfKey ('|' hfKey)*)?
  paramStmt = this.RULE('paramStmt', () => {
    this.CONSUME(T.Param);
    this.CONSUME(T.Name, { LABEL: 'name' });
    this.OPTION(() => {
      this.CONSUME(T.Colon);
      this.CONSUME2(T.Name, { LABEL: 'type' });
    });
    this.CONSUME(T.Equals);
    this.SUBRULE(this.expr);
    this.OPTION2(() => {
      this.CONSUME(T.Hf);
      this.CONSUME2(T.Colon);
      this.SUBRULE(this.hfKey);
      this.MANY(() => {
        this.CONSUME(T.Pipe);
        this.SUBRULE2(this.hfKey);
      });
    });
  });

  // hfKey := NAME ('.' NAME)* | STRING
  hfKey = this.RULE('hfKey', () => {
    this.OR([
      alt(() => {
          this.CONSUME(T.Name);
          this.MANY(() => {
            this.CONSUME(T.Dot);
            this.CONSUME2(T.Name);
          });
      }),
      alt(() => this.CONSUME(T.StringLit)),
    ]);
  });

  // letStmt := 'let' NAME '=' expr
  letStmt = this.RULE('letStmt', () => {
    this.CONSUME(T.Let);
    this.CONSUME(T.Name);
    this.CONSUME(T.Equals);
    this.SUBRULE(this.expr);
  });

  // weightStmt := 'weight' NAME '[' expr (',' expr)* ']' (':' NAME)? ('if' expr)?
  // The `if` must sit on the line that ends the declaration; on the next line it starts an if statement.
  weightStmt = this.RULE('weightStmt', () => {
    this.CONSUME(T.Weight);
    this.CONSUME(T.Name, { LABEL: 'name' });
    this.CONSUME(T.LBracket);
    this.SUBRULE(this.expr, { LABEL: 'shape' });
    this.MANY(() => {
      this.CONSUME(T.Comma);
      this.SUBRULE2(this.expr, { LABEL: 'shape' });
    });
    this.CONSUME(T.RBracket);
    this.OPTION(() => {
      this.CONSUME(T.Colon);
      this.CONSUME2(T.Name, { LABEL: 'dtype' });
    });
    this.OPTION2(gated(this.onSameLine, () => {
      this.CONSUME(T.If);
      this.SUBRULE3(this.expr, { LABEL: 'when' });
    }));
  });

  // forStmt := 'for' NAME 'in' addExpr '..' addExpr ('as' NAME)? body
  forStmt = this.RULE('forStmt', () => {
    this.CONSUME(T.For);
    this.CONSUME(T.Name, { LABEL: 'variable' });
    this.CONSUME(T.In);
    this.SUBRULE(this.addExpr, { LABEL: 'from' });
    this.CONSUME(T.DotDot);
    this.SUBRULE2(this.addExpr, { LABEL: 'to' });
    this.OPTION(() => {
      this.CONSUME(T.As);
      this.CONSUME2(T.Name, { LABEL: 'as' });
    });
    this.SUBRULE(this.body);
  });

  // ifStmt := 'if' expr body ('else' (ifStmt | body))?
  ifStmt = this.RULE('ifStmt', () => {
    this.CONSUME(T.If);
    this.SUBRULE(this.expr);
    this.SUBRULE(this.body, { LABEL: 'then' });
    this.OPTION(() => {
      this.CONSUME(T.Else);
      this.OR([
        alt(() => this.SUBRULE(this.ifStmt, { LABEL: 'elseIf' })),
        alt(() => this.SUBRULE2(this.body, { LABEL: 'else' })),
      ]);
    });
  });

  // scopeStmt := 'scope' NAME body
  scopeStmt = this.RULE('scopeStmt', () => {
    this.CONSUME(T.Scope);
    this.CONSUME(T.Name);
    this.SUBRULE(this.body);
  });

  // returnStmt := 'return' expr (',' expr)*
  returnStmt = this.RULE('returnStmt', () => {
    this.CONSUME(T.Return);
    this.SUBRULE(this.expr);
    this.MANY(() => {
      this.CONSUME(T.Comma);
      this.SUBRULE2(this.expr);
    });
  });

  // assertStmt := 'assert' expr (',' STRING)?
  assertStmt = this.RULE('assertStmt', () => {
    this.CONSUME(T.Assert);
    this.SUBRULE(this.expr);
    this.OPTION(() => {
      this.CONSUME(T.Comma);
      this.CONSUME(T.StringLit);
    });
  });

  // assignStmt := TARGET (',' NAME)* '=' expr   (TARGET: a name that is not 'param', 'let', 'weight' or 'scope')
  assignStmt = this.RULE('assignStmt', () => {
    this.CONSUME(T.Target, { LABEL: 'Name' });
    this.MANY(() => {
      this.CONSUME(T.Comma);
      this.CONSUME2(T.Name);
    });
    this.CONSUME(T.Equals);
    this.SUBRULE(this.expr);
  });

  // ---- expressions, loosest first ----

  // expr := condExpr | orExpr
  expr = this.RULE('expr', () => {
    this.OR([
      alt(() => this.SUBRULE(this.condExpr)),
      alt(() => this.SUBRULE(this.orExpr)),
    ]);
  });

  // condExpr := 'if' expr 'then' expr 'else' expr
  condExpr = this.RULE('condExpr', () => {
    this.CONSUME(T.If);
    this.SUBRULE(this.expr, { LABEL: 'test' });
    this.CONSUME(T.Then);
    this.SUBRULE2(this.expr, { LABEL: 'then' });
    this.CONSUME(T.Else);
    this.SUBRULE3(this.expr, { LABEL: 'else' });
  });

  // orExpr := andExpr ('or' andExpr)*
  orExpr = this.RULE('orExpr', () => {
    this.SUBRULE(this.andExpr);
    this.MANY(() => {
      this.CONSUME(T.Or);
      this.SUBRULE2(this.andExpr);
    });
  });

  // andExpr := notExpr ('and' notExpr)*
  andExpr = this.RULE('andExpr', () => {
    this.SUBRULE(this.notExpr);
    this.MANY(() => {
      this.CONSUME(T.And);
      this.SUBRULE2(this.notExpr);
    });
  });

  // notExpr := 'not' notExpr | cmpExpr
  notExpr = this.RULE('notExpr', () => {
    this.OR([
      alt(() => {
          this.CONSUME(T.Not);
          this.SUBRULE(this.notExpr);
      }),
      alt(() => this.SUBRULE(this.cmpExpr)),
    ]);
  });

  // cmpExpr := addExpr (CMP addExpr)?   (non-associative)
  cmpExpr = this.RULE('cmpExpr', () => {
    this.SUBRULE(this.addExpr);
    this.OPTION(() => {
      this.CONSUME(T.CmpOp);
      this.SUBRULE2(this.addExpr);
    });
  });

  // addExpr := mulExpr (('+'|'-') mulExpr)*
  addExpr = this.RULE('addExpr', () => {
    this.SUBRULE(this.mulExpr);
    this.MANY(() => {
      this.CONSUME(T.AddOp);
      this.SUBRULE2(this.mulExpr);
    });
  });

  // mulExpr := unaryExpr (('*'|'/'|'//'|'%') unaryExpr)*
  mulExpr = this.RULE('mulExpr', () => {
    this.SUBRULE(this.unaryExpr);
    this.MANY(() => {
      this.CONSUME(T.MulOp);
      this.SUBRULE2(this.unaryExpr);
    });
  });

  // unaryExpr := '-' unaryExpr | powExpr
  unaryExpr = this.RULE('unaryExpr', () => {
    this.OR([
      alt(() => {
          this.CONSUME(T.Minus);
          this.SUBRULE(this.unaryExpr);
      }),
      alt(() => this.SUBRULE(this.powExpr)),
    ]);
  });

  // powExpr := postfixExpr ('**' unaryExpr)?   (right-associative)
  powExpr = this.RULE('powExpr', () => {
    this.SUBRULE(this.postfixExpr);
    this.OPTION(() => {
      this.CONSUME(T.StarStar);
      this.SUBRULE(this.unaryExpr);
    });
  });

  // postfixExpr := primary (callSuffix | memberSuffix | indexSuffix)*
  postfixExpr = this.RULE('postfixExpr', () => {
    this.SUBRULE(this.primary);
    this.MANY(() => this.SUBRULE(this.suffix));
  });

  suffix = this.RULE('suffix', () => {
    this.OR([
      alt(() => this.SUBRULE(this.callSuffix)),
      alt(() => this.SUBRULE(this.memberSuffix)),
      alt(() => this.SUBRULE(this.indexSuffix)),
    ]);
  });

  // callSuffix := '(' (arg (',' arg)* ','?)? ')'
  callSuffix = this.RULE('callSuffix', () => {
    this.CONSUME(T.LParen);
    this.OPTION(() => {
      this.SUBRULE(this.arg);
      this.MANY(() => {
        this.CONSUME(T.Comma);
        this.SUBRULE2(this.arg);
      });
      this.OPTION2(() => this.CONSUME2(T.Comma));
    });
    this.CONSUME(T.RParen);
  });

  // arg := NAME ':' expr | expr   (a leading `NAME :` is always a named argument)
  arg = this.RULE('arg', () => {
    this.OR({
      IGNORE_AMBIGUITIES: true,
      DEF: [
        alt(() => {
            this.CONSUME(T.Name);
            this.CONSUME(T.Colon);
            this.SUBRULE(this.expr);
        }),
        alt(() => this.SUBRULE2(this.expr)),
      ],
    });
  });

  // memberSuffix := '.' NAME
  memberSuffix = this.RULE('memberSuffix', () => {
    this.CONSUME(T.Dot);
    this.CONSUME(T.Name);
  });

  // indexSuffix := '[' expr ']'
  indexSuffix = this.RULE('indexSuffix', () => {
    this.CONSUME(T.LBracket);
    this.SUBRULE(this.expr);
    this.CONSUME(T.RBracket);
  });

  // primary := NUMBER | STRING | 'true' | 'false' | 'inf' | listExpr | parenExpr | labeled | NAME
  primary = this.RULE('primary', () => {
    this.OR([
      alt(() => this.CONSUME(T.NumberLit)),
      alt(() => this.CONSUME(T.StringLit)),
      alt(() => this.CONSUME(T.True)),
      alt(() => this.CONSUME(T.False)),
      alt(() => this.CONSUME(T.Inf)),
      alt(() => this.SUBRULE(this.listExpr)),
      alt(() => this.SUBRULE(this.parenExpr)),
      alt(() => this.SUBRULE(this.labeled)),
      alt(() => this.CONSUME(T.Name)),
    ]);
  });

  // listExpr := '[' (expr (',' expr)* ','?)? ']'
  listExpr = this.RULE('listExpr', () => {
    this.CONSUME(T.LBracket);
    this.OPTION(() => {
      this.SUBRULE(this.expr);
      this.MANY(() => {
        this.CONSUME(T.Comma);
        this.SUBRULE2(this.expr);
      });
      this.OPTION2(() => this.CONSUME2(T.Comma));
    });
    this.CONSUME(T.RBracket);
  });

  // parenExpr := '(' expr ')'
  parenExpr = this.RULE('parenExpr', () => {
    this.CONSUME(T.LParen);
    this.SUBRULE(this.expr);
    this.CONSUME(T.RParen);
  });

  // labeled := NAME ':' postfixExpr
  labeled = this.RULE('labeled', () => {
    this.CONSUME(T.Name);
    this.CONSUME(T.Colon);
    this.SUBRULE(this.postfixExpr);
  });
}
